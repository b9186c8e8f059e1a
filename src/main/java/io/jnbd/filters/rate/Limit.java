package io.jnbd.filters.rate;

import io.jnbd.filters.Sleeper;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.function.LongSupplier;

/** One bandwidth limit: a token bucket whose rate follows its source, and the sleeping it takes. */
final class Limit {
  private final RateSource source;
  private final TokenBucket bucket;
  private final LongSupplier clock;
  private final Sleeper sleeper;

  Limit(RateSource source, double burstiness, LongSupplier clock, Sleeper sleeper) {
    this.source = source;
    this.clock = clock;
    this.sleeper = sleeper;
    this.bucket = new TokenBucket(source.current(), burstiness, clock.getAsLong());
  }

  /** Waits until {@code bytes} may pass. */
  void spend(long bytes) throws InterruptedIOException {
    bucket.setRate(source.current(), clock.getAsLong());
    long owed = bytes * 8;
    while (owed > 0) {
      TokenBucket.Debt debt = bucket.take(owed, clock.getAsLong());
      owed = debt.bits();
      if (owed > 0) {
        try {
          sleeper.sleep(Duration.ofNanos(debt.waitNanos()));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("rate: interrupted while waiting for bandwidth");
        }
      }
    }
  }

  long rate() {
    return bucket.rate();
  }
}
