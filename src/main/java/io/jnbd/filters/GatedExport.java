package io.jnbd.filters;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.ReadData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Locale;

/**
 * A connection's export that passes each data request through a gate on its way below: the
 * delay filter waits there, the error filter may fail the request there. Flush is never gated,
 * as in nbdkit's delay and error filters.
 */
public abstract class GatedExport extends FilterExport {
  /** The requests that pass the gate, named as nbdkit's filters name them in their keys. */
  public enum Operation {
    PREAD,
    PWRITE,
    TRIM,
    ZERO,
    EXTENTS,
    CACHE;

    /** The name in keys and messages: {@code pread}, {@code error-pread-rate}. */
    public String label() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  protected GatedExport(Export next) {
    super(next);
  }

  /** Runs before a request of {@code operation}, with its {@code flags}, goes below; throws to fail it there. */
  protected abstract void gate(Operation operation, int flags) throws IOException;

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    gate(Operation.PREAD, 0);
    next.pread(buffer, offset);
  }

  /**
   * A READ passes the gate once the layer below has handed its bytes over, before they go out;
   * when the layer below answers null, the {@link #pread} that follows passes it instead, so a
   * READ passes it once either way.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    return readDataThen(offset, length, () -> gate(Operation.PREAD, 0));
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    gate(Operation.PWRITE, flags);
    next.pwrite(buffer, offset, flags);
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    gate(Operation.TRIM, flags);
    next.trim(offset, length, flags);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    gate(Operation.ZERO, flags);
    next.zero(offset, length, flags);
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    gate(Operation.EXTENTS, flags);
    next.extents(offset, length, flags, extents);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    gate(Operation.CACHE, 0);
    next.cache(offset, length);
  }
}
