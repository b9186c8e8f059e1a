package io.jnbd.filters.blocksize;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.NbdException;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestPlugin;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An {@link ArrayDisk} that insists on {@code block}-aligned requests, as some real block devices
 * and vddk do: any unaligned call fails with EINVAL. It counts the reads and writes that reach it
 * and the largest of each, and it yields between a read and whatever comes next, so that a
 * read-modify-write done without a lock would lose concurrent writes readily.
 */
final class AlignedDisk extends TestPlugin {
  final ArrayDisk disk;
  private final int block;
  final AtomicInteger preads = new AtomicInteger();
  final AtomicInteger pwrites = new AtomicInteger();
  final AtomicLong largestRead = new AtomicLong();
  final AtomicLong largestWrite = new AtomicLong();
  final AtomicLong largestOther = new AtomicLong();

  AlignedDisk(int size, int block) {
    super("aligned", "an array disk that refuses unaligned requests");
    this.disk = new ArrayDisk(size);
    this.block = block;
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    return new FilterExport(disk.open(readOnly, exportName)) {
      @Override
      public BlockSize blockSize() {
        return new BlockSize(block, Math.max(512, block), 32 << 20);
      }

      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        check("pread", offset, buffer.remaining());
        preads.incrementAndGet();
        largestRead.accumulateAndGet(buffer.remaining(), Math::max);
        next.pread(buffer, offset);
        Thread.yield();
      }

      @Override
      public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
        check("pwrite", offset, buffer.remaining());
        pwrites.incrementAndGet();
        largestWrite.accumulateAndGet(buffer.remaining(), Math::max);
        next.pwrite(buffer, offset, flags);
      }

      @Override
      public void zero(long offset, long length, int flags) throws IOException {
        checkOther("zero", offset, length);
        next.zero(offset, length, flags);
      }

      @Override
      public void trim(long offset, long length, int flags) throws IOException {
        checkOther("trim", offset, length);
        next.trim(offset, length, flags);
      }

      @Override
      public void cache(long offset, long length) throws IOException {
        checkOther("cache", offset, length);
        next.cache(offset, length);
      }

      @Override
      public void extents(long offset, long length, int flags, Extents extents) throws IOException {
        checkOther("extents", offset, length);
        next.extents(offset, length, flags, extents);
      }
    };
  }

  private void checkOther(String operation, long offset, long length) throws NbdException {
    check(operation, offset, length);
    largestOther.accumulateAndGet(length, Math::max);
  }

  private void check(String operation, long offset, long length) throws NbdException {
    if (offset % block != 0 || length % block != 0) {
      throw new NbdException(Errno.EINVAL, operation + " of " + length + " at " + offset + " is not " + block + "-aligned");
    }
  }
}
