package io.jnbd.filters.cow;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.function.BooleanSupplier;

/**
 * One connection's view through an export's {@link Overlay}. The layer below was opened
 * read-only; whatever it can do, this export is writable, takes trims and zeroes into the
 * overlay, reports extents, and answers cache requests. Flush and FUA are accepted and do
 * nothing, since the overlay is thrown away at exit anyway.
 */
final class CowExport extends FilterExport {
  private final Overlay overlay;
  private final BooleanSupplier copyOnRead;
  private final boolean copyOnCache;
  private final boolean belowHasExtents;
  private final boolean belowCaches;

  CowExport(Export below, Overlay overlay, BooleanSupplier copyOnRead, boolean copyOnCache) throws IOException {
    super(below);
    this.overlay = overlay;
    this.copyOnRead = copyOnRead;
    this.copyOnCache = copyOnCache;
    this.belowHasExtents = below.canExtents();
    this.belowCaches = below.canCache() == Support.NATIVE;
  }

  @Override
  public long size() {
    return overlay.size();
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    overlay.read(next, buffer, offset, copyOnRead.getAsBoolean());
  }

  /**
   * A READ wholly outside the overlay passes on the layer below's answer without a copy, unless
   * cow-on-read is to keep what it reads; one that touches the overlay comes through {@link #pread}.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    return copyOnRead.getAsBoolean() ? null : overlay.readDataBelow(next, offset, length);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    overlay.write(next, buffer, offset);
  }

  @Override
  public void flush() {}

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    overlay.trim(offset, length);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    overlay.zero(next, offset, length, Flags.has(flags, Flags.MAY_TRIM));
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    overlay.extents(next, belowHasExtents, offset, length, flags, extents);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    if (copyOnCache) {
      overlay.copyIn(next, offset, length);
    } else if (belowCaches) {
      overlay.forEachAbsentRun(offset, offset + length, (from, to) -> next.cache(from, to - from));
    }
  }

  @Override
  public boolean canWrite() {
    return true;
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
    return false;
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

  /**
   * Prefers requests of whole overlay blocks, where the maximum allows: a partial write to an
   * absent block must read the rest of it below first.
   */
  @Override
  public BlockSize blockSize() throws IOException {
    BlockSize below = next.blockSize();
    BlockSize base = below != null ? below : BlockSize.DEFAULT;
    int preferred = Math.max(base.preferred(), overlay.blockSize());
    if (Integer.compareUnsigned(preferred, base.maximum()) > 0) {
      return base;
    }
    return new BlockSize(base.minimum(), preferred, base.maximum());
  }
}
