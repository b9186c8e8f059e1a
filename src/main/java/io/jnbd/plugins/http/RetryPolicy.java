package io.jnbd.plugins.http;

import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.Locale;
import java.util.random.RandomGenerator;
import org.apache.hc.client5.http.utils.DateUtils;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpResponse;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Repeats a request while the origin is briefly unavailable; the caller marks such failures as
 * {@link TransientFailure}s. Attempts stop when one succeeds, when one fails otherwise, or at the
 * retry deadline, a fixed time after the first attempt began.
 *
 * <p>The wait before the n-th retry is random between zero and min(2 s, 100 ms × 2^(n-1)) ("full
 * jitter"), so that the many readers that meet one outage do not come back in step. A
 * Retry-After from the server is the least wait. A wait that would end past the deadline is cut
 * short for one last attempt at the deadline, except a wait the server asked for: trying earlier
 * would only be turned away again, so the retries end at once.
 */
final class RetryPolicy {
  private static final Logger log = LoggerFactory.getLogger(RetryPolicy.class);
  private static final Duration FIRST_WAIT_LIMIT = Duration.ofMillis(100);
  private static final Duration WAIT_LIMIT = Duration.ofSeconds(2);

  /** Time as retries see it; tests replace it so that an outage of seconds takes none. */
  interface Pacer {
    Pacer SYSTEM = new Pacer() {
      @Override
      public long nanoTime() {
        return System.nanoTime();
      }

      @Override
      public void sleep(Duration duration) throws InterruptedException {
        Thread.sleep(duration);
      }
    };

    long nanoTime();

    void sleep(Duration duration) throws InterruptedException;
  }

  /** One attempt at a request; every failure it throws is an {@link NbdException}. */
  @FunctionalInterface
  interface Attempt<T> {
    T run() throws IOException;
  }

  /** A failure that another attempt may not meet: the origin was unreachable, or said it was busy. */
  static final class TransientFailure extends NbdException {
    private final String request;
    private final Duration retryAfter;

    /**
     * @param request what failed, for the log, e.g. "http: read of bytes 0-9 from URL"
     * @param retryAfter the wait the server asked for, or null
     */
    TransientFailure(String request, String reason, Duration retryAfter, Throwable cause) {
      super(Errno.EIO, request + " failed: " + reason, cause);
      this.request = request;
      this.retryAfter = retryAfter;
    }
  }

  private final Duration deadline;
  private final Pacer pacer;
  private final RandomGenerator random;

  /** @param deadline how long after its first attempt a request may still be retried */
  RetryPolicy(Duration deadline, Pacer pacer, RandomGenerator random) {
    this.deadline = deadline;
    this.pacer = pacer;
    this.random = random;
  }

  /**
   * Runs {@code attempt} until it succeeds or fails for good.
   *
   * @throws NbdException its failure; for a transient one that ran out of retries, with the
   *     reason they ended
   */
  <T> T run(Attempt<T> attempt) throws IOException {
    long start = pacer.nanoTime();
    long end = start + deadline.toNanos();
    TransientFailure previous = null;
    for (int attempts = 1; ; attempts++) {
      try {
        T result = attempt.run();
        if (previous != null) {
          log.debug("{} succeeded at attempt {}", previous.request, attempts);
        }
        return result;
      } catch (TransientFailure failure) {
        previous = failure;
        long now = pacer.nanoTime();
        long left = end - now;
        if (left <= 0) {
          throw givenUp(failure, String.format(Locale.ROOT, "gave up after %d attempts in %.1f s", attempts, (now - start) / 1e9));
        }
        if (failure.retryAfter != null && failure.retryAfter.toNanos() > left) {
          throw givenUp(failure, "the server asks to retry in " + failure.retryAfter.toSeconds()
              + " s, later than the retry deadline of " + deadline.toSeconds() + " s allows");
        }
        Duration wait = jitteredWait(attempts);
        if (failure.retryAfter != null && failure.retryAfter.compareTo(wait) > 0) {
          wait = failure.retryAfter;
        }
        if (wait.toNanos() > left) {
          wait = Duration.ofNanos(left);
        }
        log.debug("{}; retry {} in {} ms", failure.getMessage(), attempts, wait.toMillis());
        sleep(wait, failure);
      }
    }
  }

  private Duration jitteredWait(int attempts) {
    long limit = Math.min(WAIT_LIMIT.toNanos(), FIRST_WAIT_LIMIT.toNanos() << Math.min(attempts - 1, 20));
    return Duration.ofNanos((long) (random.nextDouble() * limit));
  }

  private void sleep(Duration wait, TransientFailure failure) throws NbdException {
    try {
      pacer.sleep(wait);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw givenUp(failure, "interrupted while waiting to retry");
    }
  }

  private static NbdException givenUp(TransientFailure failure, String why) {
    return new NbdException(Errno.EIO, failure.getMessage() + " (" + why + ")", failure);
  }

  /**
   * The wait a Retry-After header asks for: delay-seconds, or an HTTP-date counted from the
   * reply's own Date header when it has one, so that neither side's clock error counts. Null
   * when the header is absent or unreadable.
   */
  static Duration retryAfter(HttpResponse response) {
    Header header = response.getFirstHeader("Retry-After");
    if (header == null) {
      return null;
    }
    String value = header.getValue().strip();
    if (value.matches("\\d{1,9}")) {
      return Duration.ofSeconds(Long.parseLong(value));
    }
    Instant when = DateUtils.parseStandardDate(value);
    if (when == null) {
      return null;
    }
    Instant serverNow = DateUtils.parseStandardDate(response, "Date");
    Duration wait = Duration.between(serverNow != null ? serverNow : Instant.now(), when);
    return wait.isNegative() ? Duration.ZERO : wait;
  }
}
