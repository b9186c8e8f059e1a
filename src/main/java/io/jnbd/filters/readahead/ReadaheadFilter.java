package io.jnbd.filters.readahead;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Support;
import io.jnbd.api.ThreadModel;
import io.jnbd.api.Values;
import io.jnbd.blockcache.BlockCache;
import io.jnbd.blockcache.CacheExport;
import io.jnbd.blockcache.CacheSettings;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The readahead filter: detects sequential reading per export and prefetches ahead with cache
 * requests to the layer below, several at once, in a window sized by measurement (see {@link
 * StreamTable}). Prefetching only pays if something below keeps what it fetched: when the layer
 * below has no native cache, this filter puts its own bounded memory cache ({@link BlockCache})
 * between itself and that layer. State per export name, shared by all connections.
 */
public final class ReadaheadFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(ReadaheadFilter.class);

  private ReadaheadSettings settings = ReadaheadSettings.defaults();
  private final ReentrantLock exportsLock = new ReentrantLock();
  private final Map<String, StreamTable> tables = new HashMap<>();
  private final Map<String, BlockCache> ownCaches = new HashMap<>();
  /** False when the layers below serialize requests; see {@link #threadModelBelow}. */
  private volatile boolean prefetching = true;

  @Override
  public String name() {
    return "readahead";
  }

  @Override
  public String description() {
    return "prefetch ahead of sequential readers";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("readahead-window", "SIZE", "Prefetch window when a stream is confirmed; it doubles with each sequential read (default 1M)."),
        new Parameter("readahead-max-window", "SIZE", "Ceiling of the window; below it the window is bounded by twice the measured bandwidth-delay product of the layer below (default 32M). Keep it at most half of cache-max-size."),
        new Parameter("readahead-chunk", "SIZE", "Size of each prefetch request sent below (default 4M)."),
        new Parameter("readahead-max-in-flight", "N", "Prefetch requests outstanding at once per export (default 8)."),
        new Parameter("readahead-confirm", "N", "Sequential reads before a stream is prefetched for (default 2)."),
        new Parameter("readahead-streams", "N", "Sequential streams tracked per export (default 8)."),
        new Parameter("readahead-cache-size", "SIZE", "Size of the memory cache added when the layer below has no native cache (default 64M); the window is kept to at most half of it."));
  }

  @Override
  public boolean config(String key, String value) {
    ReadaheadSettings s = settings;
    String what = "readahead: " + key;
    settings =
        switch (key) {
          case "readahead-window" -> new ReadaheadSettings(positive(what, value), s.maxWindow(), s.chunk(), s.maxInFlight(), s.confirm(), s.streams(), s.cacheSize());
          case "readahead-max-window" -> s.withMaxWindow(positive(what, value));
          case "readahead-chunk" -> new ReadaheadSettings(s.window(), s.maxWindow(), chunk(what, value), s.maxInFlight(), s.confirm(), s.streams(), s.cacheSize());
          case "readahead-max-in-flight" -> new ReadaheadSettings(s.window(), s.maxWindow(), s.chunk(), Values.parseInt(what, value, 1, 1024), s.confirm(), s.streams(), s.cacheSize());
          case "readahead-confirm" -> new ReadaheadSettings(s.window(), s.maxWindow(), s.chunk(), s.maxInFlight(), Values.parseInt(what, value, 1, 1000), s.streams(), s.cacheSize());
          case "readahead-streams" -> new ReadaheadSettings(s.window(), s.maxWindow(), s.chunk(), s.maxInFlight(), s.confirm(), Values.parseInt(what, value, 1, 1024), s.cacheSize());
          case "readahead-cache-size" -> new ReadaheadSettings(s.window(), s.maxWindow(), s.chunk(), s.maxInFlight(), s.confirm(), s.streams(), positive(what, value));
          default -> null;
        };
    if (settings == null) {
      settings = s;
      return false;
    }
    return true;
  }

  private static long positive(String what, String value) {
    long size = Values.parseSize(what, value);
    if (size <= 0) {
      throw new ConfigException(what + ": must be greater than 0");
    }
    return size;
  }

  private static long chunk(String what, String value) {
    long size = positive(what, value);
    if (size > 32L << 20) {
      throw new ConfigException(what + ": at most 32M");
    }
    return size;
  }

  @Override
  public void configComplete() {
    if (settings.window() > settings.maxWindow()) {
      throw new ConfigException("readahead: readahead-window must not exceed readahead-max-window");
    }
  }

  @Override
  public void threadModelBelow(ThreadModel below) {
    prefetching = below == ThreadModel.PARALLEL;
    if (!prefetching) {
      log.warn("readahead: the layers below run {} requests, not parallel ones: a prefetch could only wait "
          + "behind the client's reads, so this filter passes everything through", below.name().toLowerCase(Locale.ROOT));
    }
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    if (!prefetching) {
      return below;
    }
    try {
      long size = below.size();
      ReadaheadSettings effective = settings;
      if (below.canCache() != Support.NATIVE) {
        below = new CacheExport(below, ownCache(exportName, size));
        effective = settings.withMaxWindow(Math.max(settings.window(), Math.min(settings.maxWindow(), settings.cacheSize() / 2)));
      }
      return new ReadaheadExport(below, table(exportName, size, effective));
    } catch (IOException | RuntimeException e) {
      below.close();
      throw e;
    }
  }

  private BlockCache ownCache(String exportName, long size) throws IOException {
    exportsLock.lock();
    try {
      BlockCache cache = ownCaches.get(exportName);
      if (cache == null) {
        cache = new BlockCache(CacheSettings.memoryReadCache(settings.cacheSize()), size);
        ownCaches.put(exportName, cache);
        log.info("readahead: the layer below export '{}' has no native cache; using a {} byte memory cache of its own", exportName, settings.cacheSize());
      }
      return cache;
    } finally {
      exportsLock.unlock();
    }
  }

  private StreamTable table(String exportName, long size, ReadaheadSettings effective) {
    exportsLock.lock();
    try {
      return tables.computeIfAbsent(exportName, name -> new StreamTable(effective, size));
    } finally {
      exportsLock.unlock();
    }
  }

  /** The stream table of an export, once a client opened it; for tests. */
  StreamTable tableOf(String exportName) {
    exportsLock.lock();
    try {
      return tables.get(exportName);
    } finally {
      exportsLock.unlock();
    }
  }

  @Override
  public void unload() {
    exportsLock.lock();
    try {
      tables.forEach((name, table) -> {
        table.retireAll();
        log.info("readahead: export '{}': {}", name, table.stats());
      });
      ownCaches.forEach((name, cache) -> {
        log.info("readahead: export '{}': own cache: {}", name, cache.stats());
        try {
          cache.close();
        } catch (IOException e) {
          log.warn("readahead: closing the cache of '{}': {}", name, e.getMessage());
        }
      });
      tables.clear();
      ownCaches.clear();
    } finally {
      exportsLock.unlock();
    }
  }
}
