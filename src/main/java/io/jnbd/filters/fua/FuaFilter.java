package io.jnbd.filters.fua;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Support;
import io.jnbd.api.Values;
import io.jnbd.util.Emulation;
import io.jnbd.util.Emulation.FlaggedOperation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Locale;

/**
 * The fua filter: changes how Forced Unit Access (and flush) is advertised and honoured, to
 * compare FUA with flushes, test fallbacks, or trade safety for speed. Modes and their names are
 * nbdkit's.
 */
public final class FuaFilter implements Filter {
  enum FuaMode {
    /** FUA is not advertised; flush is as below. */
    NONE,
    /** FUA is advertised and done as a flush after the write, even where the layer below has FUA. */
    EMULATE,
    /** FUA is advertised as native and passed below. */
    NATIVE,
    /** Every write, trim and zero gets FUA; flush does nothing (write-through). */
    FORCE,
    /** Nothing changes. */
    PASS,
    /** FUA and flush are advertised and ignored (unsafe: data may be lost in a crash). */
    DISCARD
  }

  private FuaMode mode = FuaMode.NONE;
  private Settings settings = new Settings(mode);

  /** The mode, fixed once configured; what it needs from the layer below is checked at open. */
  record Settings(FuaMode mode) {}

  @Override
  public String name() {
    return "fua";
  }

  @Override
  public String description() {
    return "change how FUA and flush are advertised and honoured";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("fuamode", "none|emulate|native|force|pass|discard",
        "none: FUA not advertised; emulate: FUA as a flush after; native: FUA passed below; force: FUA on every write, "
            + "flush ignored; pass: unchanged; discard: FUA and flush ignored, unsafe (default none)."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("fuamode")) {
      return false;
    }
    mode = Values.parseChoice("fua: " + key, value, FuaMode.class);
    return true;
  }

  @Override
  public void configComplete() {
    settings = new Settings(mode);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    FuaMode configured = settings.mode();
    String missing = switch (configured) {
      case EMULATE -> below.canFlush() ? null : "flush";
      case NATIVE, FORCE -> below.canFua() != Support.NONE ? null : "FUA";
      case NONE, PASS, DISCARD -> null;
    };
    if (missing != null) {
      below.close();
      throw new NbdException(Errno.EINVAL, "fua: fuamode=" + configured.name().toLowerCase(Locale.ROOT)
          + " needs " + missing + " from the layer below, which has none");
    }
    return new FuaExport(below, configured);
  }

  private static final class FuaExport extends FilterExport {
    private final FuaMode mode;

    FuaExport(Export next, FuaMode mode) {
      super(next, Reads.UNTOUCHED);
      this.mode = mode;
    }

    @Override
    public Support canFua() throws IOException {
      return switch (mode) {
        case NONE -> Support.NONE;
        case EMULATE -> Support.EMULATE;
        case NATIVE, FORCE, DISCARD -> Support.NATIVE;
        case PASS -> next.canFua();
      };
    }

    @Override
    public boolean canFlush() throws IOException {
      return mode == FuaMode.DISCARD || next.canFlush();
    }

    @Override
    public void flush() throws IOException {
      if (mode != FuaMode.FORCE && mode != FuaMode.DISCARD) {
        next.flush();
      }
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      durably(flags, fua -> next.pwrite(buffer, offset, fua));
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      durably(flags, fua -> next.trim(offset, length, fua));
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      durably(flags, fua -> next.zero(offset, length, fua));
    }

    private void durably(int flags, FlaggedOperation operation) throws IOException {
      switch (mode) {
        case NONE, PASS -> operation.run(flags);
        case EMULATE -> {
          operation.run(flags & ~Flags.FUA);
          if (Flags.has(flags, Flags.FUA)) {
            next.flush();
          }
        }
        case NATIVE -> Emulation.withFua(next, flags, operation);
        case FORCE -> Emulation.withFua(next, flags | Flags.FUA, operation);
        case DISCARD -> operation.run(flags & ~Flags.FUA);
      }
    }
  }
}
