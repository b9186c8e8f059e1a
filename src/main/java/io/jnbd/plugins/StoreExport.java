package io.jnbd.plugins;

import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import java.nio.ByteBuffer;

/**
 * One connection's view of a RAM disk backed by a {@link SparseStore} that all connections
 * share (memory and data plugins); trim and zero free pages.
 */
record StoreExport(SparseStore store, long size, boolean readOnly) implements RamDiskExport {
  @Override
  public void pread(ByteBuffer buffer, long offset) {
    store.read(buffer, offset);
  }

  @Override
  public ReadData readData(long offset, int length) {
    return store.readData(offset, length);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws NbdException {
    store.write(buffer, offset);
  }

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
}
