package io.jnbd.plugins;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import java.nio.ByteBuffer;

/**
 * One connection's view of a RAM disk backed by a {@link SparseStore} that all connections
 * share (memory and data plugins). RAM needs no flushing, so FUA, flush and cache are no-ops that
 * are nonetheless truthful; trim and zero free pages.
 */
final class StoreExport implements Export {
  private final SparseStore store;
  private final long size;
  private final boolean readOnly;

  StoreExport(SparseStore store, long size, boolean readOnly) {
    this.store = store;
    this.size = size;
    this.readOnly = readOnly;
  }

  @Override
  public long size() {
    return size;
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) {
    store.read(buffer, offset);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws NbdException {
    store.write(buffer, offset);
  }

  @Override
  public void flush() {}

  @Override
  public void trim(long offset, long length, int flags) {
    store.zero(offset, length);
  }

  @Override
  public void zero(long offset, long length, int flags) {
    store.zero(offset, length);
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) {
    store.extents(offset, length, extents);
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
