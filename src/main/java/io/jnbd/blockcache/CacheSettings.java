package io.jnbd.blockcache;

/**
 * How one {@link BlockCache} behaves; parsed from the command line by the cache filter, or
 * built directly by a filter that brings its own cache (readahead).
 *
 * @param mode when writes reach the layer below
 * @param cacheOnRead whether blocks read by clients are kept (NBD_CMD_CACHE fills always are)
 * @param maxSize the most bytes of blocks kept; 0 means as large as the export
 * @param highThreshold percent of maxSize at which reclaim starts
 * @param lowThreshold percent of maxSize that reclaim brings usage down to
 * @param blockSize the cache's unit of storage and LRU, a power of two
 * @param inMemory keep blocks in direct memory instead of a sparse temporary file
 */
public record CacheSettings(
    CacheMode mode,
    boolean cacheOnRead,
    long maxSize,
    int highThreshold,
    int lowThreshold,
    int blockSize,
    boolean inMemory) {

  public static final int DEFAULT_BLOCK_SIZE = 64 * 1024;

  /** A read cache in memory of at most maxSize bytes that never holds dirty data. */
  public static CacheSettings memoryReadCache(long maxSize) {
    return new CacheSettings(CacheMode.WRITETHROUGH, false, maxSize, 95, 80, DEFAULT_BLOCK_SIZE, true);
  }
}
