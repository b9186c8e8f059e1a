package io.jnbd.api;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The base for a filter's per-connection export: every operation and capability goes to {@code
 * next}, the layer below, unless the subclass overrides it. A filter sees only {@code next}.
 * The one exception is {@link #readData}, the zero-copy read, which a filter must opt in to.
 */
public abstract class FilterExport implements Export {
  protected final Export next;

  protected FilterExport(Export next) {
    this.next = next;
  }

  @Override
  public long size() throws IOException {
    return next.size();
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    next.pread(buffer, offset);
  }

  /**
   * Returns null, so that READs come through {@link #pread}: passing the layer below's bytes
   * straight to the server would bypass whatever this filter does to them. A filter that leaves
   * the bytes of a read alone (it counts or times reads, say) may override this to return {@code
   * next.readData(offset, length)}, with the offset mapped if the filter moves data, and doing
   * here whatever its {@code pread} does besides reading.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    return null;
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    next.pwrite(buffer, offset, flags);
  }

  @Override
  public void flush() throws IOException {
    next.flush();
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    next.trim(offset, length, flags);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    next.zero(offset, length, flags);
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    next.extents(offset, length, flags, extents);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    next.cache(offset, length);
  }

  @Override
  public boolean canWrite() throws IOException {
    return next.canWrite();
  }

  @Override
  public boolean canFlush() throws IOException {
    return next.canFlush();
  }

  @Override
  public Support canFua() throws IOException {
    return next.canFua();
  }

  @Override
  public boolean canTrim() throws IOException {
    return next.canTrim();
  }

  @Override
  public Support canZero() throws IOException {
    return next.canZero();
  }

  @Override
  public boolean canFastZero() throws IOException {
    return next.canFastZero();
  }

  @Override
  public boolean canExtents() throws IOException {
    return next.canExtents();
  }

  @Override
  public Support canCache() throws IOException {
    return next.canCache();
  }

  @Override
  public boolean canMultiConn() throws IOException {
    return next.canMultiConn();
  }

  @Override
  public boolean isRotational() throws IOException {
    return next.isRotational();
  }

  @Override
  public BlockSize blockSize() throws IOException {
    return next.blockSize();
  }

  @Override
  public void close() throws IOException {
    next.close();
  }
}
