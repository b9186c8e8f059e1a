package io.jnbd.plugins;

import io.jnbd.api.Errno;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.util.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.ref.Cleaner;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A sparse address space of bytes (offsets 0 to {@code Long.MAX_VALUE}) held in RAM: fixed-size
 * pages are allocated on the first write of non-zero data and freed again when they are zeroed
 * whole or become all zero, so a 1T disk that holds a few MiB costs a few MiB. Absent pages read
 * as zeroes without being allocated.
 *
 * <p>Pages live outside the Java heap, allocated with the C library's calloc and returned with
 * free: the garbage collector never copies or scans the data, so 1 GiB written costs about 1 GiB
 * of RSS and adds nothing to GC pauses, a trimmed page is given back at once, and there is no
 * JVM ceiling (heap or direct-memory limit) to size for the largest disk. Only the index of pages
 * is on the heap. A store that becomes unreachable (the data format's temporary groups) frees its
 * pages through a {@link Cleaner}.
 *
 * <p>Safe for any number of concurrent callers: pages live in a concurrent map and every access
 * to one page (copy in, copy out, zero, free) holds one of a fixed set of striped locks, so each
 * page-sized piece of a request is atomic and no page is freed while another thread copies it.
 * Requests that span pages are not atomic as a whole, which NBD does not ask for.
 *
 * <p>{@link #readData} lends read-only views of the pages instead of copying them. A page counts
 * its holders: the store while the page is in it, and each view lent out. Zeroing or trimming
 * takes a page out of the store at once, but its memory is freed only when the last view is
 * given back, so a view never shows freed memory or memory reused for another page. A view is
 * not a snapshot: a write to its range while it is out shows through, as it may in any read
 * that runs alongside a write.
 *
 * <p>Shared by every connection of an export (memory, data plugins): it is the export's state.
 */
public final class SparseStore {
  /** The page size used by the plugins; small enough to keep sparse writes cheap. */
  public static final int DEFAULT_PAGE_SIZE = 64 * 1024;
  private static final int STRIPES = 64;
  private static final Cleaner CLEANER = Cleaner.create();

  private final int pageSize;
  private final int pageShift;
  private final MemorySegment zeroPage;
  /** A page of zeroes to lend for absent pages. */
  private final ByteBuffer zeroView;
  private final ConcurrentHashMap<Long, Page> pages = new ConcurrentHashMap<>();
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
    this.zeroPage = MemorySegment.ofArray(new byte[pageSize]);
    this.zeroView = ByteBuffer.allocateDirect(pageSize).asReadOnlyBuffer();
    for (int i = 0; i < STRIPES; i++) {
      locks[i] = new ReentrantLock();
    }
    CLEANER.register(this, new FreeAll(pages));
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
    MemorySegment target = MemorySegment.ofBuffer(dst);
    long done = 0;
    while (done < target.byteSize()) {
      long at = offset + done;
      long index = at >>> pageShift;
      int inPage = (int) (at & (pageSize - 1));
      int n = (int) Math.min(pageSize - inPage, target.byteSize() - done);
      ReentrantLock lock = lockFor(index);
      lock.lock();
      try {
        Page page = pages.get(index);
        if (page != null) {
          MemorySegment.copy(page.memory, inPage, target, done, n);
        } else {
          target.asSlice(done, n).fill((byte) 0);
        }
      } finally {
        lock.unlock();
      }
      done += n;
    }
    dst.position(dst.limit());
  }

  /** Writes the remaining bytes of {@code src} at {@code offset}; zeroes need no new pages. */
  public void write(ByteBuffer src, long offset) throws NbdException {
    MemorySegment source = MemorySegment.ofBuffer(src);
    long done = 0;
    try {
      while (done < source.byteSize()) {
        long at = offset + done;
        long index = at >>> pageShift;
        int inPage = (int) (at & (pageSize - 1));
        int n = (int) Math.min(pageSize - inPage, source.byteSize() - done);
        ReentrantLock lock = lockFor(index);
        lock.lock();
        try {
          Page page = pages.get(index);
          if (page == null && !isZero(source.asSlice(done, n))) {
            page = new Page(allocate());
            pages.put(index, page);
          }
          if (page != null) {
            MemorySegment.copy(source, done, page.memory, inPage, n);
          }
        } finally {
          lock.unlock();
        }
        done += n;
      }
    } finally {
      // A failed allocation leaves the buffer where the write stopped, as the heap version did.
      src.position(src.position() + (int) done);
    }
  }

  /**
   * The {@code length} bytes at {@code offset} as read-only views of the pages, without a copy:
   * {@link ReadData.Zeroes} when no page of the range is allocated, else {@link ReadData.Views}
   * whose allocated pages stay allocated until it is closed (absent ones are lent as zeroes).
   */
  public ReadData readData(long offset, int length) {
    int pageCount = (int) (((offset + length - 1) >>> pageShift) - (offset >>> pageShift) + 1);
    ByteBuffer[] views = new ByteBuffer[pageCount];
    Page[] held = new Page[pageCount];
    int heldCount = 0;
    long done = 0;
    for (int i = 0; i < pageCount; i++) {
      long at = offset + done;
      long index = at >>> pageShift;
      int inPage = (int) (at & (pageSize - 1));
      int n = (int) Math.min(pageSize - inPage, length - done);
      Page page;
      ReentrantLock lock = lockFor(index);
      lock.lock();
      try {
        page = pages.get(index);
        if (page != null) {
          page.hold();
        }
      } finally {
        lock.unlock();
      }
      if (page != null) {
        held[heldCount++] = page;
        views[i] = page.view(inPage, n);
      } else {
        views[i] = zeroView.slice(0, n);
      }
      done += n;
    }
    if (heldCount == 0) {
      return new ReadData.Zeroes(length);
    }
    int holders = heldCount;
    return new ReadData.Views(views, length, () -> {
      for (int i = 0; i < holders; i++) {
        held[i].release();
      }
    });
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
        Page page = pages.get(index);
        if (page != null) {
          if (n < pageSize) {
            page.memory.asSlice(inPage, n).fill((byte) 0);
          }
          if (n == pageSize || isZero(page.memory)) {
            pages.remove(index);
            page.release();
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

  private MemorySegment allocate() throws NbdException {
    try {
      return NativeMemory.calloc(pageSize);
    } catch (OutOfMemoryError e) {
      // One page is small: failing this request leaves the server usable for the others.
      throw new NbdException(Errno.ENOMEM, "out of memory for a " + pageSize + "-byte page");
    }
  }

  private boolean isZero(MemorySegment bytes) {
    return bytes.mismatch(zeroPage.asSlice(0, bytes.byteSize())) == -1;
  }

  private ReentrantLock lockFor(long index) {
    return locks[(int) (index ^ (index >>> 17)) & (STRIPES - 1)];
  }

  /**
   * One allocated page and its holders: the store while the page is in it, and each view lent
   * out. A holder is added only under the page's stripe lock while the page is in the store, so
   * once the store has let go, the count only falls; the memory is freed when it reaches 0.
   */
  private static final class Page {
    private static final VarHandle HOLDERS;

    static {
      try {
        HOLDERS = MethodHandles.lookup().findVarHandle(Page.class, "holders", int.class);
      } catch (ReflectiveOperationException e) {
        throw new ExceptionInInitializerError(e);
      }
    }

    final MemorySegment memory;
    /** A plain field with atomic updates rather than an AtomicInteger: one object less per page. */
    private volatile int holders = 1;

    Page(MemorySegment memory) {
      this.memory = memory;
    }

    /** A read-only view of {@code length} bytes from {@code offset}. */
    ByteBuffer view(int offset, int length) {
      return memory.asSlice(offset, length).asByteBuffer().asReadOnlyBuffer();
    }

    void hold() {
      HOLDERS.getAndAdd(this, 1);
    }

    void release() {
      if ((int) HOLDERS.getAndAdd(this, -1) == 1) {
        NativeMemory.free(memory);
      }
    }
  }

  /** Lets go of the pages of a store nobody can reach any more; holds no reference to the store. */
  private record FreeAll(Map<Long, Page> pages) implements Runnable {
    @Override
    public void run() {
      pages.values().forEach(Page::release);
      pages.clear();
    }
  }
}
