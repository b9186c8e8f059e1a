package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import io.jnbd.api.Values;
import java.nio.ByteBuffer;
import java.util.List;

/** A disk that reads as zeroes and discards writes: a sink for benchmarks and client tests. */
public final class NullPlugin implements Plugin {
  private long size = 0;

  @Override
  public String name() {
    return "null";
  }

  @Override
  public String description() {
    return "reads return zeroes, writes are discarded";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("size", "SIZE", "Virtual size of the disk (default 0)."));
  }

  @Override
  public String magicConfigKey() {
    return "size";
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("size")) {
      throw new ConfigException("null: unknown parameter '" + key + "'");
    }
    size = Values.parseSize("null: size", value);
    return true;
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new NullExport(size, readOnly);
  }

  private record NullExport(long size, boolean readOnly) implements Export {
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
    public void flush() {}

    @Override
    public void trim(long offset, long length, int flags) {}

    @Override
    public void zero(long offset, long length, int flags) {}

    @Override
    public void extents(long offset, long length, int flags, Extents extents) {
      extents.add(offset, length, Extents.HOLE_ZERO);
    }

    @Override
    public void cache(long offset, long length) {}

    @Override
    public boolean canWrite() {
      return !readOnly;
    }

    @Override
    public boolean canFlush() {
      return true;
    }

    @Override
    public Support canFua() {
      return Support.NATIVE;
    }

    @Override
    public boolean canTrim() {
      return true;
    }

    @Override
    public Support canZero() {
      return Support.NATIVE;
    }

    @Override
    public boolean canFastZero() {
      return true;
    }

    @Override
    public boolean canExtents() {
      return true;
    }

    @Override
    public Support canCache() {
      return Support.NATIVE;
    }

    @Override
    public boolean canMultiConn() {
      return true;
    }
  }
}
