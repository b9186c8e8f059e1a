package io.jnbd.blockcache;

import java.util.concurrent.atomic.LongAdder;

/** What one cache did, for the debug log, the exit summary and tests. */
public final class CacheStats {
  /** Client reads served wholly from cached blocks without waiting. */
  public final LongAdder hits = new LongAdder();
  /** Client reads served from cached blocks after waiting for a fill already in flight. */
  public final LongAdder waits = new LongAdder();
  /** Client reads that needed at least one read from the layer below. */
  public final LongAdder misses = new LongAdder();
  /** Reads sent to the layer below (fills and uncached client reads), and their bytes. */
  public final LongAdder originReads = new LongAdder();
  public final LongAdder originBytes = new LongAdder();
  /** Bytes stored by fills (NBD_CMD_CACHE, readahead, cache-on-read). */
  public final LongAdder filledBytes = new LongAdder();
  /** Clean blocks dropped to make room, and dirty blocks written below. */
  public final LongAdder evictions = new LongAdder();
  public final LongAdder writebacks = new LongAdder();

  @Override
  public String toString() {
    return String.format(
        "hits=%d waits=%d misses=%d origin-reads=%d origin-bytes=%d filled-bytes=%d evictions=%d writebacks=%d",
        hits.sum(), waits.sum(), misses.sum(), originReads.sum(), originBytes.sum(), filledBytes.sum(),
        evictions.sum(), writebacks.sum());
  }
}
