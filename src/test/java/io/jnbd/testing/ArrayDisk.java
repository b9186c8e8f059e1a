package io.jnbd.testing;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small disk in a byte array for server tests: every capability can be switched, and what
 * reached it (flushes, FUA writes, native zeroes) is counted, so tests can check that the server
 * honours and emulates capabilities as advertised. Extents report runs of zero bytes as holes
 * (and ignore REQ_ONE, as a layer may). With {@link #handsOver}, READs may skip the copy: it
 * lends read-only views of the array ({@link Export#readData}), and counts those still out.
 */
public final class ArrayDisk extends TestPlugin {
  public final byte[] data;
  public boolean writable = true;
  public boolean flush = true;
  public Support fua = Support.NATIVE;
  public boolean trim = true;
  public Support zero = Support.NATIVE;
  public boolean fastZero = true;
  public boolean extents = true;
  public Support cache = Support.NATIVE;
  public boolean multiConn = true;
  public final AtomicInteger flushes = new AtomicInteger();
  public final AtomicInteger fuaWrites = new AtomicInteger();
  public final AtomicInteger nativeZeroes = new AtomicInteger();
  public final AtomicInteger caches = new AtomicInteger();
  public final AtomicInteger extentsCalls = new AtomicInteger();
  public volatile int lastExtentsFlags = -1;
  public volatile int lastZeroFlags = -1;
  /** Whether readData lends views of the array instead of leaving READs to pread. */
  public volatile boolean handsOver;
  /** Views lent by readData and not yet given back. */
  public final AtomicInteger viewsOut = new AtomicInteger();

  public ArrayDisk(int size) {
    super("arraydisk", "test disk in a byte array");
    data = new byte[size];
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws NbdException {
    if (exportName.equals("missing")) {
      throw new NbdException(Errno.EINVAL, "no export called 'missing'");
    }
    return new Export() {
      @Override
      public long size() {
        return data.length;
      }

      @Override
      public void pread(ByteBuffer buffer, long offset) {
        synchronized (data) {
          buffer.put(data, (int) offset, buffer.remaining());
        }
      }

      @Override
      public ReadData readData(long offset, int length) {
        if (!handsOver) {
          return null;
        }
        viewsOut.incrementAndGet();
        ByteBuffer view = ByteBuffer.wrap(data, (int) offset, length).slice().asReadOnlyBuffer();
        return new ReadData.Views(new ByteBuffer[] {view}, length, viewsOut::decrementAndGet);
      }

      @Override
      public void pwrite(ByteBuffer buffer, long offset, int flags) {
        if (Flags.has(flags, Flags.FUA)) {
          fuaWrites.incrementAndGet();
        }
        synchronized (data) {
          buffer.get(data, (int) offset, buffer.remaining());
        }
      }

      @Override
      public void flush() {
        flushes.incrementAndGet();
      }

      @Override
      public void trim(long offset, long length, int flags) {
        fill(offset, length);
      }

      @Override
      public void zero(long offset, long length, int flags) throws NbdException {
        if (zero != Support.NATIVE) {
          throw new NbdException(Errno.ENOTSUP, "no native zero");
        }
        nativeZeroes.incrementAndGet();
        lastZeroFlags = flags;
        fill(offset, length);
      }

      @Override
      public void extents(long offset, long length, int flags, Extents out) {
        extentsCalls.incrementAndGet();
        lastExtentsFlags = flags;
        long end = offset + length;
        long at = offset;
        synchronized (data) {
          while (at < end && !out.isFull()) {
            boolean isZero = data[(int) at] == 0;
            long runEnd = at;
            while (runEnd < end && (data[(int) runEnd] == 0) == isZero) {
              runEnd++;
            }
            out.add(at, runEnd - at, isZero ? Extents.HOLE_ZERO : Extents.DATA);
            at = runEnd;
          }
        }
      }

      @Override
      public void cache(long offset, long length) {
        caches.incrementAndGet();
      }

      @Override
      public boolean canWrite() {
        return writable && !readOnly;
      }

      @Override
      public boolean canFlush() {
        return flush;
      }

      @Override
      public Support canFua() {
        return fua;
      }

      @Override
      public boolean canTrim() {
        return trim;
      }

      @Override
      public Support canZero() {
        return zero;
      }

      @Override
      public boolean canFastZero() {
        return fastZero;
      }

      @Override
      public boolean canExtents() {
        return extents;
      }

      @Override
      public Support canCache() {
        return cache;
      }

      @Override
      public boolean canMultiConn() {
        return multiConn;
      }
    };
  }

  private void fill(long offset, long length) {
    synchronized (data) {
      Arrays.fill(data, (int) offset, (int) (offset + length), (byte) 0);
    }
  }
}
