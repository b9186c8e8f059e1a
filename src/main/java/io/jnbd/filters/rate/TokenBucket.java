package io.jnbd.filters.rate;

/**
 * A token bucket of bits: it fills at {@code rate} bits per second up to {@code rate *
 * burstiness} bits, starts full, and each transfer takes its bits out. A transfer that finds too
 * few takes what there is and owes the rest, which the caller sleeps off and asks for again. A
 * rate of 0 is no limit. Times are nanoseconds from one clock, given by the caller.
 */
final class TokenBucket {
  private final double burstiness;
  private long rate;
  private double level;
  private long filledAt;

  /** What a request for bits left owing, and how long the owed bits take to arrive. */
  record Debt(long bits, long waitNanos) {
    static final Debt NONE = new Debt(0, 0);
  }

  TokenBucket(long rate, double burstiness, long now) {
    this.rate = rate;
    this.burstiness = burstiness;
    this.level = capacity();
    this.filledAt = now;
  }

  private double capacity() {
    return rate * burstiness;
  }

  synchronized long rate() {
    return rate;
  }

  /** Changes the rate from now on; tokens already in the bucket stay, up to the new capacity. */
  synchronized void setRate(long newRate, long now) {
    if (newRate != rate) {
      refill(now);
      rate = newRate;
      level = Math.min(level, capacity());
    }
  }

  /** Takes up to {@code bits}; returns what is still owed, {@link Debt#NONE} when all were there. */
  synchronized Debt take(long bits, long now) {
    if (rate == 0) {
      return Debt.NONE;
    }
    refill(now);
    if (level >= bits) {
      level -= bits;
      return Debt.NONE;
    }
    long owed = bits - (long) level;
    level = 0;
    return new Debt(owed, (long) Math.ceil(owed * 1e9 / rate));
  }

  private void refill(long now) {
    level = Math.min(capacity(), level + (now - filledAt) / 1e9 * rate);
    filledAt = now;
  }
}
