package io.jnbd.testing;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An {@link ArrayDisk} that fails on demand, for the retry filters. It can fail the next N data
 * calls or every Nth call, fail the next N opens, break every export now open (each call on a
 * broken export fails until a new one is opened, like a dropped connection to a remote), and
 * break every export by itself after a number of calls. A failing read scribbles on its buffer and failing extents
 * report an extent first, so a retry that does not start afresh is caught. A readData call is a
 * data call too; it hands over what the disk does ({@link ArrayDisk#handsOver}).
 */
public final class FlakyDisk extends TestPlugin {
  public final ArrayDisk disk;
  /** Data calls that fail with this errno. */
  public volatile Errno errno = Errno.EIO;
  /** Each export breaks after this many successful data calls; 0: never by itself. */
  public volatile int breakAfter;
  /** Every this-many-th data call (counted over all exports) fails; 0: none. */
  public volatile int failEvery;
  /** When set, failing calls wait here first, so a test can hold several failures in flight. */
  public volatile CountDownLatch holdFailures;
  public final AtomicInteger opens = new AtomicInteger();
  public final AtomicInteger closes = new AtomicInteger();
  public final AtomicInteger failures = new AtomicInteger();
  /** Whether the latest open asked for a read-only export. */
  public volatile boolean lastOpenReadOnly;
  private final AtomicInteger failNextCalls = new AtomicInteger();
  private final AtomicInteger failNextOpens = new AtomicInteger();
  private final AtomicInteger failuresWaiting = new AtomicInteger();
  private final AtomicInteger calls = new AtomicInteger();
  private final Set<Flaky> open = ConcurrentHashMap.newKeySet();

  public FlakyDisk(int size) {
    super("flakydisk", "a test disk that fails on demand");
    disk = new ArrayDisk(size);
  }

  /** The next {@code count} data calls fail, whichever export they reach. */
  public FlakyDisk failCalls(int count) {
    failNextCalls.set(count);
    return this;
  }

  public FlakyDisk failOpens(int count) {
    failNextOpens.set(count);
    return this;
  }

  /** Every export open now fails every call from now on; exports opened later work. */
  public void breakOpenExports() {
    open.forEach(export -> export.broken = true);
  }

  /** How many failing calls are waiting at {@link #holdFailures}. */
  public int failuresWaiting() {
    return failuresWaiting.get();
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    opens.incrementAndGet();
    lastOpenReadOnly = readOnly;
    if (failNextOpens.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
      throw new NbdException(errno, "flakydisk: open refused");
    }
    Flaky export = new Flaky(disk.open(readOnly, exportName));
    open.add(export);
    return export;
  }

  private final class Flaky extends FilterExport {
    volatile boolean broken;
    private final AtomicInteger calls = new AtomicInteger();

    Flaky(Export next) {
      super(next);
    }

    private void failIfDue(String operation) throws IOException {
      int limit = breakAfter;
      if (limit > 0 && calls.incrementAndGet() > limit) {
        broken = true;
      }
      int every = failEvery;
      boolean due = every > 0 && FlakyDisk.this.calls.incrementAndGet() % every == 0;
      if (broken || due || failNextCalls.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
        failures.incrementAndGet();
        CountDownLatch hold = holdFailures;
        if (hold != null) {
          failuresWaiting.incrementAndGet();
          try {
            hold.await();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException();
          } finally {
            failuresWaiting.decrementAndGet();
          }
        }
        throw new NbdException(errno, "flakydisk: " + operation + (broken ? " on a broken export" : " failed"));
      }
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      try {
        failIfDue("pread");
      } catch (IOException e) {
        buffer.put(new byte[buffer.remaining() / 2]).put((byte) 0x7f);
        throw e;
      }
      next.pread(buffer, offset);
    }

    @Override
    public ReadData readData(long offset, int length) throws IOException {
      failIfDue("readData");
      return next.readData(offset, length);
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      failIfDue("pwrite");
      next.pwrite(buffer, offset, flags);
    }

    @Override
    public void flush() throws IOException {
      failIfDue("flush");
      next.flush();
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      failIfDue("trim");
      next.trim(offset, length, flags);
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      failIfDue("zero");
      next.zero(offset, length, flags);
    }

    @Override
    public void extents(long offset, long length, int flags, Extents extents) throws IOException {
      try {
        failIfDue("extents");
      } catch (IOException e) {
        extents.add(offset, 1, Extents.DATA);
        throw e;
      }
      next.extents(offset, length, flags, extents);
    }

    @Override
    public void cache(long offset, long length) throws IOException {
      failIfDue("cache");
      next.cache(offset, length);
    }

    @Override
    public void close() throws IOException {
      open.remove(this);
      closes.incrementAndGet();
      next.close();
    }
  }
}
