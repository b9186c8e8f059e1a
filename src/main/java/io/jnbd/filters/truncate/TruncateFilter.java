package io.jnbd.filters.truncate;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.ReadData;
import io.jnbd.api.Values;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * The truncate filter: changes the size of the layer below, to a fixed size and/or rounded to a
 * power of two. Bytes past the end of the layer below read as zeroes; writing zeroes there
 * succeeds, writing anything else fails with ENOSPC (as nbdkit answers), and trims and zeroes
 * there have nothing to do.
 */
public final class TruncateFilter implements Filter {
  /** nbdkit keeps the rounding in 32 bits: 2G is the largest power of two it takes. */
  private static final long LARGEST_ROUNDING = 1L << 31;
  private static final byte[] ZEROES = new byte[64 * 1024];

  /** The new size; null keeps the size below. */
  private Long truncate;
  /** Round the size up to a multiple of this (1: no rounding). */
  private long roundUp = 1;
  /** Round the size down to a multiple of this (1: no rounding). */
  private long roundDown = 1;
  private Resizing resizing = new Resizing(null, 1, 1);

  /** What the size becomes; the roundings are checked when built. */
  record Resizing(Long truncate, long roundUp, long roundDown) {
    Resizing {
      checkRounding("round-up", roundUp);
      checkRounding("round-down", roundDown);
    }

    private static void checkRounding(String key, long n) {
      if (Long.bitCount(n) != 1 || n > LARGEST_ROUNDING) {
        throw new ConfigException("truncate: " + key + ": must be a power of 2 from 1 to 2G: " + n);
      }
    }

    /** The size served over a layer below of {@code below} bytes. */
    long sizeOver(long below) throws NbdException {
      long size = truncate != null ? truncate : below;
      long up = (size + roundUp - 1) & -roundUp;
      if (up < size) {
        throw new NbdException(Errno.EINVAL, "truncate: cannot round " + size + " up to a multiple of " + roundUp);
      }
      return up & -roundDown;
    }
  }

  @Override
  public String name() {
    return "truncate";
  }

  @Override
  public String description() {
    return "change the size of the layer below";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("truncate", "SIZE", "The new size, smaller or larger than the layer below (default: the size below)."),
        new Parameter("round-up", "N", "Round the size up to a multiple of N, a power of 2 up to 2G (default: no rounding)."),
        new Parameter("round-down", "N", "Round the size down to a multiple of N, a power of 2 up to 2G (default: no rounding)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "truncate" -> truncate = Values.parseSize("truncate: " + key, value);
      case "round-up" -> roundUp = Values.parseSize("truncate: " + key, value);
      case "round-down" -> roundDown = Values.parseSize("truncate: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    resizing = new Resizing(truncate, roundUp, roundDown);
  }

  /** The size this filter serves over a layer below of {@code below} bytes. */
  long sizeOver(long below) throws NbdException {
    return resizing.sizeOver(below);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    try {
      return new Resized(below, below.size(), sizeOver(below.size()));
    } catch (IOException | RuntimeException e) {
      below.close();
      throw e;
    }
  }

  /** One connection's view: the layer below up to {@code belowSize}, zeroes after it. */
  private static final class Resized extends FilterExport {
    private final long belowSize;
    private final long size;

    Resized(Export next, long belowSize, long size) {
      super(next);
      this.belowSize = belowSize;
      this.size = size;
    }

    @Override
    public long size() {
      return size;
    }

    /** How many of the {@code count} bytes at {@code offset} exist in the layer below. */
    private long below(long offset, long count) {
      return Math.max(0, Math.min(count, belowSize - offset));
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      int inside = (int) below(offset, buffer.remaining());
      if (inside > 0) {
        int limit = buffer.limit();
        buffer.limit(buffer.position() + inside);
        next.pread(buffer, offset);
        buffer.limit(limit);
      }
      while (buffer.hasRemaining()) {
        buffer.put(ZEROES, 0, Math.min(ZEROES.length, buffer.remaining()));
      }
    }

    /**
     * The layer below's bytes when the READ lies inside them, zeroes when it lies wholly past
     * them; a READ across the end comes through {@link #pread}.
     */
    @Override
    public ReadData readData(long offset, int length) throws IOException {
      long inside = below(offset, length);
      if (inside == length) {
        return next.readData(offset, length);
      }
      return inside == 0 ? new ReadData.Zeroes(length) : null;
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      int inside = (int) below(offset, buffer.remaining());
      for (int i = buffer.position() + inside; i < buffer.limit(); i++) {
        if (buffer.get(i) != 0) {
          throw new NbdException(Errno.ENOSPC, "truncate: write of non-zero data past the "
              + belowSize + " bytes of the layer below, at " + (offset + i - buffer.position()));
        }
      }
      if (inside > 0) {
        next.pwrite(buffer.slice(buffer.position(), inside), offset, flags);
      }
      buffer.position(buffer.limit());
    }

    @Override
    public void trim(long offset, long count, int flags) throws IOException {
      long inside = below(offset, count);
      if (inside > 0) {
        next.trim(offset, inside, flags);
      }
    }

    @Override
    public void zero(long offset, long count, int flags) throws IOException {
      long inside = below(offset, count);
      if (inside > 0) {
        next.zero(offset, inside, flags);
      }
    }

    @Override
    public void cache(long offset, long count) throws IOException {
      long inside = below(offset, count);
      if (inside > 0) {
        next.cache(offset, inside);
      }
    }

    @Override
    public void extents(long offset, long count, int flags, Extents extents) throws IOException {
      long inside = below(offset, count);
      if (inside > 0) {
        next.extents(offset, inside, flags, extents);
        if (Flags.has(flags, Flags.REQ_ONE) || extents.next() < belowSize) {
          return;
        }
      }
      long from = Math.max(offset, belowSize);
      extents.add(from, offset + count - from, Extents.HOLE_ZERO);
    }
  }
}
