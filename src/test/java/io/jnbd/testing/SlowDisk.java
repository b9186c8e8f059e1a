package io.jnbd.testing;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiPredicate;

/**
 * A read-only disk of seeded random bytes that behaves like a remote image: every pread costs a
 * fixed delay, whatever its size, and is counted with its bytes. Like the http plugin it is
 * parallel, multi-conn and has no native cache. Tests measure how many and how large the reads
 * that reach it are, never how long they take.
 *
 * <p>Instead of a delay, a disk can be made as slow as a prefetcher can meet, whatever the load
 * of the machine: with {@link #holdReadsAhead()}, a read waits until the reader has asked for a
 * byte at or past its start ({@link #readerAt}), so prefetched data arrives only once it is
 * needed, and the reader waits for every prefetch it uses.
 */
public final class SlowDisk extends TestPlugin {
  public final byte[] data;
  private final long delayNanos;
  public final AtomicLong preads = new AtomicLong();
  public final AtomicLong bytes = new AtomicLong();
  public final AtomicLong largestRead = new AtomicLong();
  /** Preads for which this returns true (given offset and length) fail with EIO; none by default. */
  public volatile BiPredicate<Long, Integer> failing = (offset, length) -> false;
  private final ReentrantLock readerLock = new ReentrantLock();
  private final Condition readerMoved = readerLock.newCondition();
  private boolean holding;
  /** The end of the reader's furthest request so far; reads that start before it may go on. */
  private long readerEnd;

  public SlowDisk(int size, long delayMillis, long seed) {
    super("slowdisk", "read-only random bytes with a fixed delay per read");
    this.data = new byte[size];
    new Random(seed).nextBytes(data);
    this.delayNanos = delayMillis * 1_000_000;
  }

  /** From now on, a read waits until the reader has reached its start; see the class comment. */
  public void holdReadsAhead() {
    readerLock.lock();
    try {
      holding = true;
    } finally {
      readerLock.unlock();
    }
  }

  /**
   * The reader is about to ask for bytes up to {@code end}: held reads that start before it go
   * on. {@code Long.MAX_VALUE} lets every read go, as a test must before it closes.
   */
  public void readerAt(long end) {
    readerLock.lock();
    try {
      readerEnd = Math.max(readerEnd, end);
      readerMoved.signalAll();
    } finally {
      readerLock.unlock();
    }
  }

  private void awaitReader(long offset) throws InterruptedIOException {
    readerLock.lock();
    try {
      while (holding && offset >= readerEnd) {
        readerMoved.await();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while held for the reader");
    } finally {
      readerLock.unlock();
    }
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new Export() {
      @Override
      public long size() {
        return data.length;
      }

      @Override
      public void pread(ByteBuffer buffer, long offset) throws java.io.IOException {
        int length = buffer.remaining();
        preads.incrementAndGet();
        bytes.addAndGet(length);
        largestRead.accumulateAndGet(length, Math::max);
        awaitReader(offset);
        if (delayNanos > 0) {
          try {
            Thread.sleep(delayNanos / 1_000_000, (int) (delayNanos % 1_000_000));
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
          }
        }
        if (failing.test(offset, length)) {
          throw new NbdException(Errno.EIO, "injected failure at " + offset);
        }
        buffer.put(data, (int) offset, length);
      }

      @Override
      public boolean canMultiConn() {
        return true;
      }
    };
  }
}
