package io.jnbd.filters.retry;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The retry-request filter, nbdkit's: a request that fails is tried again on the same export
 * below after a fixed wait, a few times; by default so is the open of a connection. Lighter than
 * the retry filter, which reopens the export: this suits a plugin whose failures are
 * independent, such as an http origin behind a load balancer with the odd bad server.
 */
public final class RetryRequestFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(RetryRequestFilter.class);
  private final Sleeper sleeper;
  private int retries = 2;
  private Duration delay = Duration.ofSeconds(2);
  private boolean retryOpen = true;
  private RetryPolicy policy;

  public RetryRequestFilter() {
    this(Sleeper.REAL);
  }

  RetryRequestFilter(Sleeper sleeper) {
    this.sleeper = sleeper;
  }

  @Override
  public String name() {
    return "retry-request";
  }

  @Override
  public String description() {
    return "retry a failed request on the same export below";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("retry-request-retries", "N", "How many times one request is retried before its error goes to the client (default 2)."),
        new Parameter("retry-request-delay", "SECS|NNms", "The wait before each retry, in seconds unless a unit (ms, us, ns) follows; not 0 (default 2)."),
        new Parameter("retry-request-open", "true|false", "Also retry opening the export below when a client connects (default true)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "retry-request-retries" -> retries = Values.parseInt("retry-request: " + key, value, 0, Integer.MAX_VALUE);
      case "retry-request-delay" -> delay = RetryFilter.positiveDelay("retry-request: " + key, value);
      case "retry-request-open" -> retryOpen = Values.parseBool("retry-request: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    policy = new RetryPolicy(retries, delay, false);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = openRetrying(next, readOnly, exportName);
    try {
      return new SameExport(below, policy, sleeper);
    } catch (IOException | RuntimeException e) {
      below.close();
      throw e;
    }
  }

  private Export openRetrying(Layer next, boolean readOnly, String exportName) throws IOException {
    for (int retry = 1; ; retry++) {
      try {
        return next.open(readOnly, exportName);
      } catch (IOException e) {
        if (!retryOpen || retry > policy.retries()) {
          throw e;
        }
        log.debug("retry-request: open of '{}' failed ({}); retry {} of {}", exportName, e.getMessage(), retry, policy.retries());
        try {
          sleeper.sleep(policy.delay());
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("retry-request: open abandoned: the server is stopping");
        }
      }
    }
  }

  /** One connection: every attempt goes to the export opened for it. */
  private static final class SameExport extends RetryingExport {
    private final Export below;
    private final Sleeper sleeper;

    SameExport(Export below, RetryPolicy policy, Sleeper sleeper) throws IOException {
      super("retry-request", policy, Offer.of(below));
      this.below = below;
      this.sleeper = sleeper;
    }

    @Override
    Failure attempt(Request request, Attempt attempt) {
      try {
        attempt.run(below);
        return null;
      } catch (IOException e) {
        return new Failure(e, 0);
      }
    }

    @Override
    boolean recover(Failure failure, Duration wait) throws InterruptedException {
      sleeper.sleep(wait);
      return true;
    }

    @Override
    public void close() throws IOException {
      below.close();
    }
  }
}
