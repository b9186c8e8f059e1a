package io.jnbd.filters.nocache;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Support;
import io.jnbd.api.Values;
import io.jnbd.util.DirectBufferPool;
import io.jnbd.util.Emulation;
import java.io.IOException;
import java.util.List;

/**
 * The nocache filter: takes away, or changes, how NBD_CMD_CACHE (prefetch) is handled, to
 * measure what cache requests are worth. Modes and their names are nbdkit's.
 */
public final class NocacheFilter implements Filter {
  enum CacheMode {
    /** Cache requests are not advertised. */
    NONE,
    /** Advertised, and served by reading the range, whatever the layer below could do. */
    EMULATE,
    /** Advertised, accepted, and ignored. */
    NOP
  }

  private CacheMode mode = CacheMode.NONE;
  private Settings settings = new Settings(mode);
  /** Scratch space for reads that serve emulated cache requests of a filter above. */
  private final DirectBufferPool buffers = new DirectBufferPool(4L << 20);

  /** The mode, fixed once configured. */
  record Settings(CacheMode mode) {}

  @Override
  public String name() {
    return "nocache";
  }

  @Override
  public String description() {
    return "disable or change the handling of cache (prefetch) requests";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("cachemode", "none|emulate|nop",
        "none: cache requests not advertised; emulate: served by reading the range; nop: accepted and ignored (default none)."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("cachemode")) {
      return false;
    }
    mode = Values.parseChoice("nocache: " + key, value, CacheMode.class);
    return true;
  }

  @Override
  public void configComplete() {
    settings = new Settings(mode);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    CacheMode configured = settings.mode();
    return new FilterExport(next.open(readOnly, exportName), FilterExport.Reads.UNTOUCHED) {
      @Override
      public Support canCache() {
        return switch (configured) {
          case NONE -> Support.NONE;
          case EMULATE -> Support.EMULATE;
          case NOP -> Support.NATIVE;
        };
      }

      @Override
      public void cache(long offset, long length) throws IOException {
        if (configured == CacheMode.EMULATE) {
          Emulation.readAndDiscard(next, offset, length, buffers);
        }
      }
    };
  }
}
