package io.jnbd.filters.readahead;

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
import io.jnbd.filters.PerExport;
import java.io.IOException;
import java.util.List;
import java.util.Locale;
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

  private static final ReadaheadSettings DEFAULTS = ReadaheadSettings.defaults();

  private long window = DEFAULTS.window();
  private long maxWindow = DEFAULTS.maxWindow();
  private long chunk = DEFAULTS.chunk();
  private int maxInFlight = DEFAULTS.maxInFlight();
  private int confirm = DEFAULTS.confirm();
  private int streams = DEFAULTS.streams();
  private long cacheSize = DEFAULTS.cacheSize();
  private ReadaheadSettings settings = DEFAULTS;
  private final PerExport<StreamTable> tables = new PerExport<>("readahead", "the stream table");
  private final PerExport<BlockCache> ownCaches = new PerExport<>("readahead", "its own cache");
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
        new Parameter("readahead-window", "SIZE", "Prefetch window when a stream is confirmed; it doubles with each sequential read (default 1M). Over a slow layer (a recent read took 2 ms or more) a stream starts at the window's bound instead."),
        new Parameter("readahead-max-window", "SIZE", "Ceiling of the window; below it the window is bounded by twice the measured bandwidth-delay product of the layer below (default 32M). Keep it at most half of cache-max-size."),
        new Parameter("readahead-chunk", "SIZE", "Size of each prefetch request sent below (default 4M)."),
        new Parameter("readahead-max-in-flight", "N", "Prefetch requests outstanding at once per export (default 8); the window is at least this many chunks. Over a slow layer they are sent at most this many per round trip, spread out."),
        new Parameter("readahead-confirm", "N", "Sequential reads before a stream is prefetched for (default 2). Over a slow layer a read of 256K or more that continues the last one exactly counts as two."),
        new Parameter("readahead-streams", "N", "Sequential streams tracked per export (default 8)."),
        new Parameter("readahead-cache-size", "SIZE", "Size of the memory cache added when the layer below has no native cache (default 64M); the window is kept to at most half of it."));
  }

  @Override
  public boolean config(String key, String value) {
    String what = "readahead: " + key;
    switch (key) {
      case "readahead-window" -> window = Values.parseSize(what, value);
      case "readahead-max-window" -> maxWindow = Values.parseSize(what, value);
      case "readahead-chunk" -> chunk = Values.parseSize(what, value);
      case "readahead-max-in-flight" -> maxInFlight = Values.parseInt(what, value, 1, 1024);
      case "readahead-confirm" -> confirm = Values.parseInt(what, value, 1, 1000);
      case "readahead-streams" -> streams = Values.parseInt(what, value, 1, 1024);
      case "readahead-cache-size" -> cacheSize = Values.parseSize(what, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    settings = new ReadaheadSettings(window, maxWindow, chunk, maxInFlight, confirm, streams, cacheSize);
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
    return ownCaches.get(exportName, name -> {
      log.info("readahead: the layer below export '{}' has no native cache; using a {} byte memory cache of its own", name, settings.cacheSize());
      return new BlockCache(CacheSettings.memoryReadCache(settings.cacheSize()), size);
    }, PerExport.noCheck());
  }

  private StreamTable table(String exportName, long size, ReadaheadSettings effective) throws IOException {
    return tables.get(exportName, name -> new StreamTable(effective, size), PerExport.noCheck());
  }

  /** The stream table of an export, once a client opened it; for tests. */
  StreamTable tableOf(String exportName) {
    return tables.find(exportName);
  }

  @Override
  public void unload() {
    tables.closeAll((name, table) -> {
      table.close();
      log.info("readahead: export '{}': {}", name, table.stats());
    });
    ownCaches.closeAll((name, cache) -> log.info("readahead: export '{}': own cache: {}", name, cache.stats()));
  }
}
