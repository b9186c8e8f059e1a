package io.jnbd.filters.swab;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * The swab filter: reverses the byte order of every 2-, 4- or 8-byte word of the layer below
 * (an Atari Falcon disk, or the pattern plugin made little-endian). The size is rounded down to
 * a whole word and the word is the advertised minimum block size; a request that is not aligned
 * to it (only a filter above could send one) fails with EINVAL, as in nbdkit.
 */
public final class SwabFilter implements Filter {
  /** The word size in bytes: 1 (swab-bits=8) turns the filter off. */
  private int word = 2;
  private Settings settings = new Settings(word);

  /** @param word the word size in bytes, fixed once configured */
  record Settings(int word) {
    boolean swaps() {
      return word > 1;
    }
  }

  @Override
  public String name() {
    return "swab";
  }

  @Override
  public String description() {
    return "swap the byte order of every 16, 32 or 64-bit word";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("swab-bits", "8|16|32|64",
        "The word whose bytes are reversed: 16 swaps byte pairs, 32 and 64 reverse 4 and 8-byte words, 8 does nothing (default 16)."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("swab-bits")) {
      return false;
    }
    word = switch (value.trim()) {
      case "8" -> 1;
      case "16" -> 2;
      case "32" -> 4;
      case "64" -> 8;
      default -> throw new ConfigException("swab: swab-bits: must be 8, 16, 32 or 64: '" + value + "'");
    };
    return true;
  }

  @Override
  public void configComplete() {
    settings = new Settings(word);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(readOnly, exportName);
    return settings.swaps() ? new Swapped(below, settings.word()) : below;
  }

  /** Reverses the bytes of each {@code word}-byte word of {@code buffer}'s remaining bytes in place. */
  static void swap(ByteBuffer buffer, int word) {
    for (int i = buffer.position(); i < buffer.limit(); i += word) {
      switch (word) {
        case 2 -> buffer.putShort(i, Short.reverseBytes(buffer.getShort(i)));
        case 4 -> buffer.putInt(i, Integer.reverseBytes(buffer.getInt(i)));
        case 8 -> buffer.putLong(i, Long.reverseBytes(buffer.getLong(i)));
        default -> throw new IllegalArgumentException("word of " + word + " bytes");
      }
    }
  }

  private static final class Swapped extends FilterExport {
    private final int word;

    Swapped(Export next, int word) {
      super(next);
      this.word = word;
    }

    @Override
    public long size() throws IOException {
      return next.size() & -word;
    }

    @Override
    public BlockSize blockSize() throws IOException {
      BlockSize below = next.blockSize();
      BlockSize base = below != null ? below : BlockSize.DEFAULT;
      int minimum = Math.max(base.minimum(), word);
      int preferred = Math.max(base.preferred(), minimum);
      return new BlockSize(minimum, preferred, Math.max(base.maximum(), preferred));
    }

    private void requireAligned(String operation, long offset, long length) throws NbdException {
      if (((offset | length) & (word - 1)) != 0) {
        throw new NbdException(Errno.EINVAL, "swab: " + operation + " of " + length + " bytes at " + offset
            + " is not aligned to the " + word + "-byte word");
      }
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      requireAligned("read", offset, buffer.remaining());
      int start = buffer.position();
      next.pread(buffer, offset);
      swap(buffer.duplicate().position(start).limit(buffer.position()), word);
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      requireAligned("write", offset, buffer.remaining());
      ByteBuffer swapped = ByteBuffer.allocate(buffer.remaining()).put(buffer.duplicate()).flip();
      swap(swapped, word);
      next.pwrite(swapped, offset, flags);
      buffer.position(buffer.limit());
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      requireAligned("trim", offset, length);
      next.trim(offset, length, flags);
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      requireAligned("zero", offset, length);
      next.zero(offset, length, flags);
    }

    @Override
    public void cache(long offset, long length) throws IOException {
      requireAligned("cache", offset, length);
      next.cache(offset, length);
    }

    @Override
    public void extents(long offset, long length, int flags, Extents extents) throws IOException {
      requireAligned("extents", offset, length);
      next.extents(offset, length, flags, extents);
    }
  }
}
