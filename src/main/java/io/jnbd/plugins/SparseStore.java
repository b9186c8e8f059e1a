package io.jnbd.plugins;

import io.jnbd.api.Errno;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A sparse address space of bytes (offsets 0 to {@code Long.MAX_VALUE}) held in RAM: fixed-size
 * pages are allocated on the first write of non-zero data and freed again when they are zeroed
 * whole or become all zero, so a 1T disk that holds a few MiB costs a few MiB. Absent pages read
 * as zeroes without being allocated.
 *
 * <p>Safe for any number of concurrent callers: pages live in a concurrent map and every access
 * to one page (copy in, copy out, zero, free) holds one of a fixed set of striped locks, so each
 * page-sized piece of a request is atomic and allocation never races with freeing. Requests that
 * span pages are not atomic as a whole, which NBD does not ask for.
 *
 * <p>Shared by every connection of an export (memory, data plugins): it is the export's state.
 */
public final class SparseStore {
  /** The page size used by the plugins; small enough to keep sparse writes cheap. */
  public static final int DEFAULT_PAGE_SIZE = 64 * 1024;
  private static final int STRIPES = 64;

  private final int pageSize;
  private final int pageShift;
  private final byte[] zeroPage;
  private final ConcurrentHashMap<Long, byte[]> pages = new ConcurrentHashMap<>();
  private final ReentrantLock[] locks = new ReentrantLock[STRIPES];

  public SparseStore() {
    this(DEFAULT_PAGE_SIZE);
  }

  /** @param pageSize a power of two; tests use tiny pages to exercise page boundaries */
  public SparseStore(int pageSize) {
    if (pageSize <= 0 || Integer.bitCount(pageSize) != 1) {
      throw new IllegalArgumentException("page size must be a power of two: " + pageSize);
    }
    this.pageSize = pageSize;
    this.pageShift = Integer.numberOfTrailingZeros(pageSize);
    this.zeroPage = new byte[pageSize];
    for (int i = 0; i < STRIPES; i++) {
      locks[i] = new ReentrantLock();
    }
  }

  public int pageSize() {
    return pageSize;
  }

  /** How many bytes of pages are allocated now. */
  public long allocatedBytes() {
    return (long) pages.size() * pageSize;
  }

  /** Fills {@code dst} from its position to its limit with the bytes at {@code offset}. */
  public void read(ByteBuffer dst, long offset) {
    long at = offset;
    while (dst.hasRemaining()) {
      long index = at >>> pageShift;
      int inPage = (int) (at & (pageSize - 1));
      int n = Math.min(pageSize - inPage, dst.remaining());
      ReentrantLock lock = lockFor(index);
      lock.lock();
      try {
        byte[] page = pages.get(index);
        dst.put(page != null ? page : zeroPage, inPage, n);
      } finally {
        lock.unlock();
      }
      at += n;
    }
  }

  /** Writes the remaining bytes of {@code src} at {@code offset}; zeroes need no new pages. */
  public void write(ByteBuffer src, long offset) throws NbdException {
    long at = offset;
    while (src.hasRemaining()) {
      long index = at >>> pageShift;
      int inPage = (int) (at & (pageSize - 1));
      int n = Math.min(pageSize - inPage, src.remaining());
      ReentrantLock lock = lockFor(index);
      lock.lock();
      try {
        byte[] page = pages.get(index);
        if (page == null && !isZero(src, n)) {
          page = allocate();
          pages.put(index, page);
        }
        if (page != null) {
          src.get(page, inPage, n);
        } else {
          src.position(src.position() + n);
        }
      } finally {
        lock.unlock();
      }
      at += n;
    }
  }

  /** Makes a range read as zeroes, freeing every page that ends up all zero. */
  public void zero(long offset, long length) {
    long at = offset;
    long end = offset + length;
    while (at < end) {
      long index = at >>> pageShift;
      int inPage = (int) (at & (pageSize - 1));
      int n = (int) Math.min(pageSize - inPage, end - at);
      ReentrantLock lock = lockFor(index);
      lock.lock();
      try {
        if (n == pageSize) {
          pages.remove(index);
        } else {
          byte[] page = pages.get(index);
          if (page != null) {
            Arrays.fill(page, inPage, inPage + n, (byte) 0);
            if (Arrays.equals(page, zeroPage)) {
              pages.remove(index);
            }
          }
        }
      } finally {
        lock.unlock();
      }
      at += n;
    }
  }

  /** Reports allocated pages as data and absent ones as holes, page by page. */
  public void extents(long offset, long length, Extents out) {
    long end = offset + length;
    long index = offset >>> pageShift;
    while (!out.isFull() && (index << pageShift) < end) {
      long pageStart = index << pageShift;
      out.add(pageStart, pageSize, pages.containsKey(index) ? Extents.DATA : Extents.HOLE_ZERO);
      index++;
    }
  }

  private byte[] allocate() throws NbdException {
    try {
      return new byte[pageSize];
    } catch (OutOfMemoryError e) {
      // One page is small: failing this request leaves the heap usable for the others.
      throw new NbdException(Errno.ENOMEM, "out of memory for a " + pageSize + "-byte page", e);
    }
  }

  private boolean isZero(ByteBuffer src, int n) {
    return src.slice(src.position(), n).mismatch(ByteBuffer.wrap(zeroPage, 0, n)) == -1;
  }

  private ReentrantLock lockFor(long index) {
    return locks[(int) (index ^ (index >>> 17)) & (STRIPES - 1)];
  }
}
