package io.jnbd.plugins;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import java.nio.ByteBuffer;

/** A disk that reads as zeroes and discards writes: a sink for benchmarks and client tests. */
public final class NullPlugin extends SizedPlugin {
  public NullPlugin() {
    super(0, "Virtual size of the disk (default 0).");
  }

  @Override
  public String name() {
    return "null";
  }

  @Override
  public String description() {
    return "reads return zeroes, writes are discarded";
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new NullExport(size(), readOnly);
  }

  private record NullExport(long size, boolean readOnly) implements RamDiskExport {
    private static final byte[] ZEROES = new byte[64 * 1024];

    @Override
    public void pread(ByteBuffer buffer, long offset) {
      while (buffer.hasRemaining()) {
        buffer.put(ZEROES, 0, Math.min(ZEROES.length, buffer.remaining()));
      }
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) {
      buffer.position(buffer.limit());
    }

    @Override
    public void trim(long offset, long length, int flags) {}

    @Override
    public void zero(long offset, long length, int flags) {}

    @Override
    public void extents(long offset, long length, int flags, Extents extents) {
      extents.add(offset, length, Extents.HOLE_ZERO);
    }
  }
}
