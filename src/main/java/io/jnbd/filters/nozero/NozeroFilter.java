package io.jnbd.filters.nozero;

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
import java.io.IOException;
import java.util.List;
import java.util.Locale;

/**
 * The nozero filter: takes away, or changes, how WRITE_ZEROES and its FAST_ZERO flag are
 * handled, to compare clients and servers with and without efficient zeroing. Modes and their
 * names are nbdkit's.
 */
public final class NozeroFilter implements Filter {
  enum ZeroMode {
    /** WRITE_ZEROES is not advertised: clients write zeroes as data. */
    NONE,
    /** Advertised, and always done by writing zeroes, whatever the layer below could do. */
    EMULATE,
    /** Passed below, without the permission to punch holes (MAY_TRIM). */
    NOTRIM,
    /** Passed below unchanged (to combine with a fastzeromode). */
    PLUGIN
  }

  enum FastZeroMode {
    /** With emulate, advertised but always refused; otherwise as the layer below does. */
    DEFAULT,
    /** Advertised, and every fast zero fails at once with ENOTSUP. */
    SLOW,
    /** Advertised, and the flag is dropped (unsafe: a fast zero may then be slow). */
    IGNORE,
    /** Not advertised. */
    NONE
  }

  private ZeroMode zeroMode = ZeroMode.NONE;
  private FastZeroMode fastZeroMode = FastZeroMode.DEFAULT;
  private Modes modes = new Modes(zeroMode, fastZeroMode);

  /** The two modes, fixed once configured; any pair is allowed, as in nbdkit. */
  record Modes(ZeroMode zero, FastZeroMode fastZero) {
    /** Whether zero requests go to the layer below, which must then support them. */
    boolean passesBelow() {
      return zero == ZeroMode.NOTRIM || zero == ZeroMode.PLUGIN;
    }
  }

  @Override
  public String name() {
    return "nozero";
  }

  @Override
  public String description() {
    return "disable or change the handling of WRITE_ZEROES and fast zero";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("zeromode", "none|emulate|notrim|plugin", "none: WRITE_ZEROES not advertised; emulate: zeroes written as data; notrim: passed below without MAY_TRIM; plugin: passed below unchanged (default none)."),
        new Parameter("fastzeromode", "default|slow|ignore|none", "slow: fast zeroes fail at once; ignore: the FAST_ZERO flag is dropped; none: fast zero not advertised; default: refused with emulate, else as the layer below (default default)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "zeromode" -> zeroMode = Values.parseChoice("nozero: " + key, value, ZeroMode.class);
      case "fastzeromode" -> fastZeroMode = Values.parseChoice("nozero: " + key, value, FastZeroMode.class);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    modes = new Modes(zeroMode, fastZeroMode);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    Modes configured = modes;
    if (configured.passesBelow() && !readOnly && below.canZero() == Support.NONE) {
      below.close();
      throw new NbdException(Errno.EINVAL, "nozero: zeromode=" + configured.zero().name().toLowerCase(Locale.ROOT)
          + " needs zero support from the layer below, which has none");
    }
    return new NozeroExport(below, configured.zero(), configured.fastZero());
  }

  private static final class NozeroExport extends FilterExport {
    private final ZeroMode zeroMode;
    private final FastZeroMode fastZeroMode;

    NozeroExport(Export next, ZeroMode zeroMode, FastZeroMode fastZeroMode) {
      super(next, Reads.UNTOUCHED);
      this.zeroMode = zeroMode;
      this.fastZeroMode = fastZeroMode;
    }

    @Override
    public Support canZero() throws IOException {
      return switch (zeroMode) {
        case NONE -> Support.NONE;
        case EMULATE -> Support.EMULATE;
        case NOTRIM, PLUGIN -> next.canZero();
      };
    }

    @Override
    public boolean canFastZero() throws IOException {
      if (zeroMode == ZeroMode.NONE) {
        return false;
      }
      return switch (fastZeroMode) {
        case NONE -> false;
        case SLOW, IGNORE -> true;
        case DEFAULT -> zeroMode == ZeroMode.EMULATE || next.canFastZero();
      };
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      boolean fast = Flags.has(flags, Flags.FAST_ZERO);
      switch (zeroMode) {
        case NONE -> throw new NbdException(Errno.ENOTSUP, "nozero: zero is not advertised");
        case EMULATE -> {
          if (fast) {
            throw new NbdException(Errno.ENOTSUP, "nozero: zeroes are written as data, which is not fast");
          }
          Emulation.withFua(next, flags & Flags.FUA, fua -> Emulation.writeZeroes(next, offset, length, fua));
        }
        case NOTRIM, PLUGIN -> {
          if (fast && fastZeroMode == FastZeroMode.SLOW) {
            throw new NbdException(Errno.ENOTSUP, "nozero: fastzeromode=slow refuses fast zeroes");
          }
          int passed = flags;
          if (fastZeroMode == FastZeroMode.IGNORE) {
            passed &= ~Flags.FAST_ZERO;
          }
          if (zeroMode == ZeroMode.NOTRIM) {
            passed &= ~Flags.MAY_TRIM;
          }
          next.zero(offset, length, passed);
        }
      }
    }
  }
}
