package io.jnbd.filters.cache;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.blockcache.BlockCache;
import io.jnbd.blockcache.CacheExport;
import io.jnbd.blockcache.CacheMode;
import io.jnbd.blockcache.CacheSettings;
import io.jnbd.filters.PerExport;
import java.io.IOException;
import java.util.List;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The cache filter: keeps blocks of the layer below in a temporary file or in memory, fills
 * itself on NBD_CMD_CACHE (and on reads with cache-on-read), and holds writes according to the
 * cache mode. One {@link BlockCache} per export name, shared by all connections to it.
 */
public final class CacheFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(CacheFilter.class);
  /** The bound of a memory cache when cache-max-size is not given. */
  static final long DEFAULT_MEMORY_SIZE = 64L << 20;

  private CacheMode mode = CacheMode.WRITEBACK;
  private boolean cacheOnRead;
  private long maxSize;
  private int highThreshold = 95;
  private int lowThreshold = 80;
  private long blockSize = CacheSettings.DEFAULT_BLOCK_SIZE;
  private boolean inMemory;
  private CacheSettings settings;

  private final PerExport<BlockCache> caches = new PerExport<>("cache", "the cache");

  @Override
  public String name() {
    return "cache";
  }

  @Override
  public String description() {
    return "cache blocks of the layer below in a temporary file or memory";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("cache", "writeback|writethrough|unsafe", "When writes reach the layer below (default writeback)."),
        new Parameter("cache-on-read", "true|false", "Keep blocks that clients read (default false: only NBD_CMD_CACHE, readahead and writes fill the cache)."),
        new Parameter("cache-max-size", "SIZE", "Most bytes cached; least recently used blocks are evicted (default: the export size for file storage, 64M for memory)."),
        new Parameter("cache-high-threshold", "PERCENT", "Usage of cache-max-size at which eviction starts (default 95)."),
        new Parameter("cache-low-threshold", "PERCENT", "Usage that eviction brings the cache down to (default 80)."),
        new Parameter("cache-min-block-size", "SIZE", "Cache block size, a power of 2 from 4K to 32M (default 64K)."),
        new Parameter("cache-storage", "file|memory", "Keep blocks in a deleted sparse temporary file under TMPDIR, or in direct memory (default file)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "cache" -> mode = CacheMode.parse(key, value);
      case "cache-on-read" -> cacheOnRead = Values.parseBool("cache: " + key, value);
      case "cache-max-size" -> maxSize = Values.parseSize("cache: " + key, value);
      case "cache-high-threshold" -> highThreshold = Values.parseInt("cache: " + key, value, 1, 100);
      case "cache-low-threshold" -> lowThreshold = Values.parseInt("cache: " + key, value, 0, 99);
      case "cache-min-block-size" -> blockSize = Values.parseSize("cache: " + key, value);
      case "cache-storage" -> {
        switch (value.trim().toLowerCase(Locale.ROOT)) {
          case "file" -> inMemory = false;
          case "memory" -> inMemory = true;
          default -> throw new ConfigException("cache: cache-storage must be file or memory: '" + value + "'");
        }
      }
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    long bound = maxSize == 0 && inMemory ? DEFAULT_MEMORY_SIZE : maxSize;
    // Out of int range is out of the record's range too: it names the limits.
    int block = (int) Math.min(blockSize, Integer.MAX_VALUE);
    settings = new CacheSettings(mode, cacheOnRead, bound, highThreshold, lowThreshold, block, inMemory);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    try {
      return new CacheExport(below, cacheFor(exportName, below.size()));
    } catch (IOException | RuntimeException e) {
      below.close();
      throw e;
    }
  }

  private BlockCache cacheFor(String exportName, long size) throws IOException {
    return caches.get(exportName, name -> {
      BlockCache cache = new BlockCache(settings, size);
      log.debug("cache: export '{}': {} slots of {} bytes, {}", name, cache.capacity(), settings.blockSize(), settings);
      return cache;
    }, (name, cache) -> {});
  }

  @Override
  public void unload() {
    caches.closeAll((name, cache) -> log.info("cache: export '{}': {}", name, cache.stats()));
  }

  /** The cache of an export, once a client opened it; for tests. */
  BlockCache cacheOf(String exportName) {
    return caches.find(exportName);
  }
}
