package io.jnbd.filters.blocksize;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import java.io.IOException;
import java.util.List;

/**
 * The blocksize filter (nbdkit's): lets any client use a layer below that needs aligned or
 * bounded requests. Clients may send any alignment and length; the layer below sees only
 * multiples of {@code minblock}, reads and writes of at most {@code maxdata} bytes, and trims,
 * zeroes, caches and extents of at most {@code maxlen}. Reads are widened to whole blocks,
 * unaligned heads and tails of writes and zeroes are read-modify-write cycles, and those of trims
 * are dropped. The export shrinks to a multiple of {@code minblock}.
 *
 * <p>Not to be confused with blocksize-policy, which changes what is advertised and leaves the
 * requests alone. This one advertises a minimum of 1, since it accepts anything.
 */
public final class BlocksizeFilter implements Filter {
  /** nbdkit's own limit on a READ or WRITE payload, the default maxdata. */
  static final long NBDKIT_MAX_DATA = 64L << 20;
  /** The largest length an NBD request can carry. */
  static final long MAX_REQUEST = 0xFFFF_FFFFL;
  private static final int LARGEST_MINBLOCK = 65536;

  private final RangeLocks locks = new RangeLocks();
  /** Null when not configured: then each export takes it from the layer below. */
  private Long minblock;
  private Long maxdata;
  private Long maxlen;
  private Configured configured = new Configured(null, null, null);

  /**
   * The configured sizes, null where the layer below decides; each is checked, and against the
   * others where minblock is given, when built.
   */
  record Configured(Long minblock, Long maxdata, Long maxlen) {
    Configured {
      check("minblock", minblock);
      check("maxdata", maxdata);
      check("maxlen", maxlen);
      if (minblock != null) {
        if (Long.bitCount(minblock) != 1) {
          throw new ConfigException("blocksize: minblock must be a power of 2: " + minblock);
        }
        if (minblock > LARGEST_MINBLOCK) {
          throw new ConfigException("blocksize: minblock must not exceed 65536: " + minblock);
        }
        limits(minblock.intValue(), maxdata != null ? maxdata : minblock, maxlen != null ? maxlen : minblock);
      }
    }

    private static void check(String key, Long size) {
      if (size == null) {
        return;
      }
      if (size == 0) {
        throw new ConfigException("blocksize: " + key + " must be non-zero: " + size);
      }
      if (size > MAX_REQUEST) {
        throw new ConfigException("blocksize: " + key + " is too large (at most 4294967295): " + size);
      }
    }

    /** The limits for one export: the configured ones, and what the layer below says for the rest. */
    Limits over(BlockSize below) {
      int block = minblock != null ? minblock.intValue() : below != null ? below.minimum() : 1;
      long data = maxdata != null ? maxdata
          : below != null ? Math.min(NBDKIT_MAX_DATA, Integer.toUnsignedLong(below.maximum())) : NBDKIT_MAX_DATA;
      if (maxdata == null) {
        data = Math.max(block, data - data % block);
      }
      long length = maxlen != null ? maxlen : MAX_REQUEST - MAX_REQUEST % block;
      return limits(block, data, length);
    }
  }

  @Override
  public String name() {
    return "blocksize";
  }

  @Override
  public String description() {
    return "split and align requests to what the layer below accepts";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("minblock", "SIZE", "Alignment and smallest request passed below: a power of 2 up to 64k (default: the minimum block size below, else 1)."),
        new Parameter("maxdata", "SIZE", "Largest read or write passed below, a multiple of minblock (default: 64M, or less if the layer below says so)."),
        new Parameter("maxlen", "SIZE", "Largest trim, zero, cache or extents passed below, a multiple of minblock (default: 4G-1 rounded down to minblock)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "minblock" -> minblock = Values.parseSize("blocksize: " + key, value);
      case "maxdata" -> maxdata = Values.parseSize("blocksize: " + key, value);
      case "maxlen" -> maxlen = Values.parseSize("blocksize: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    configured = new Configured(minblock, maxdata, maxlen);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    try {
      return new BlocksizeExport(below, limitsOver(below.blockSize()), locks);
    } catch (ConfigException e) {
      below.close();
      throw new NbdException(Errno.EINVAL, e.getMessage());
    }
  }

  /** The limits for one export: the configured ones, and what the layer below says for the rest. */
  Limits limitsOver(BlockSize below) {
    return configured.over(below);
  }

  private static Limits limits(int block, long data, long length) {
    if (data % block != 0) {
      throw new ConfigException("blocksize: maxdata must be a multiple of minblock " + block + ": " + data);
    }
    if (length % block != 0) {
      throw new ConfigException("blocksize: maxlen must be a multiple of minblock " + block + ": " + length);
    }
    return new Limits(block, (int) Math.min(data, Integer.MAX_VALUE - Integer.MAX_VALUE % block), length);
  }

  /**
   * What one export passes below.
   *
   * @param block the alignment (minblock)
   * @param data the largest read or write (maxdata; a ByteBuffer cannot hold more than 2G anyway)
   * @param length the largest trim, zero, cache or extents (maxlen)
   */
  record Limits(int block, int data, long length) {
    long alignDown(long offset) {
      return offset - offset % block;
    }

    long alignUp(long offset) {
      return alignDown(offset + block - 1);
    }

    boolean aligned(long offset) {
      return offset % block == 0;
    }
  }
}
