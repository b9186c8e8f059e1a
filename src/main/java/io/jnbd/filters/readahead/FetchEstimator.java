package io.jnbd.filters.readahead;

/**
 * Estimates the bandwidth-delay product of the layer below from completed prefetches, the way
 * BBR does for a network path: the delay is the shortest recent fetch time, the bandwidth the
 * delivery rate over the recent completions. Their product is how many bytes must be in flight
 * to keep the origin busy. Not thread-safe: the stream table calls it under its lock.
 */
final class FetchEstimator {
  private static final int SAMPLES = 16;
  private final long[] bytes = new long[SAMPLES];
  private final long[] durations = new long[SAMPLES];
  private final long[] completions = new long[SAMPLES];
  private int count;
  private int next;

  void sample(long byteCount, long durationNanos, long completedAtNanos) {
    bytes[next] = byteCount;
    durations[next] = durationNanos;
    completions[next] = completedAtNanos;
    next = (next + 1) % SAMPLES;
    count = Math.min(SAMPLES, count + 1);
  }

  /** Bytes per second delivered over the recent completions; 0 while unknown. */
  double bandwidth() {
    if (count < 2) {
      return 0;
    }
    int oldest = count < SAMPLES ? 0 : next;
    int newest = (next + SAMPLES - 1) % SAMPLES;
    long span = completions[newest] - completions[oldest];
    if (span <= 0) {
      return 0;
    }
    long delivered = 0;
    for (int i = 0; i < count; i++) {
      if (i != oldest) {
        delivered += bytes[i];
      }
    }
    return delivered * 1e9 / span;
  }

  /** The shortest recent fetch time in seconds; 0 while unknown. */
  double delay() {
    long min = Long.MAX_VALUE;
    for (int i = 0; i < count; i++) {
      min = Math.min(min, durations[i]);
    }
    return count == 0 ? 0 : min / 1e9;
  }

  /** Bytes that must be in flight to cover the delay at the measured bandwidth; 0 while unknown. */
  long bandwidthDelayProduct() {
    return (long) (bandwidth() * delay());
  }
}
