package io.jnbd.filters.readahead;

import java.util.concurrent.atomic.LongAdder;

/** What readahead did for one export, for the debug log, the exit summary and tests. */
public final class ReadaheadStats {
  public final LongAdder reads = new LongAdder();
  /** Reads wholly inside a range already prefetched (or being prefetched). */
  public final LongAdder hits = new LongAdder();
  /** Reads of a confirmed stream that its prefetches did not cover. */
  public final LongAdder misses = new LongAdder();
  public final LongAdder prefetches = new LongAdder();
  public final LongAdder prefetchedBytes = new LongAdder();
  /** Prefetched bytes the stream skipped over or never reached. */
  public final LongAdder unusedBytes = new LongAdder();
  public final LongAdder errors = new LongAdder();

  @Override
  public String toString() {
    return String.format(
        "reads=%d prefetch-hits=%d prefetch-misses=%d prefetches=%d prefetched-bytes=%d unused-bytes=%d prefetch-errors=%d",
        reads.sum(), hits.sum(), misses.sum(), prefetches.sum(), prefetchedBytes.sum(), unusedBytes.sum(), errors.sum());
  }
}
