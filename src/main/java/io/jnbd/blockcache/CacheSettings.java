package io.jnbd.blockcache;

import io.jnbd.api.ConfigException;

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
  public static final int MIN_BLOCK_SIZE = 4096;

  /** Checks the settings against each other; the messages name the cache filter's keys. */
  public CacheSettings {
    if (Integer.bitCount(blockSize) != 1 || blockSize < MIN_BLOCK_SIZE || blockSize > BlockCache.MAX_RUN) {
      throw new ConfigException("cache: cache-min-block-size must be a power of 2 from 4K to 32M: " + blockSize);
    }
    if (highThreshold < 1 || highThreshold > 100 || lowThreshold < 0 || lowThreshold >= highThreshold) {
      throw new ConfigException("cache: cache-low-threshold (" + lowThreshold + ") must be below cache-high-threshold ("
          + highThreshold + "), both percentages");
    }
    if (maxSize < 0 || maxSize > 0 && maxSize < blockSize) {
      throw new ConfigException("cache: cache-max-size must be at least one block (" + blockSize + " bytes)");
    }
  }

  /** A read cache in memory of at most maxSize bytes (at least one block) that never holds dirty data. */
  public static CacheSettings memoryReadCache(long maxSize) {
    return new CacheSettings(CacheMode.WRITETHROUGH, false, Math.max(maxSize, DEFAULT_BLOCK_SIZE), 95, 80, DEFAULT_BLOCK_SIZE, true);
  }
}
