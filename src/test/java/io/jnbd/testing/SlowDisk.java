package io.jnbd.testing;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiPredicate;

/**
 * A read-only disk of seeded random bytes that behaves like a remote image: every pread costs a
 * fixed delay, whatever its size, and is counted with its bytes. Like the http plugin it is
 * parallel, multi-conn and has no native cache. Tests measure how many and how large the reads
 * that reach it are, never how long they take.
 */
public final class SlowDisk implements Plugin {
  public final byte[] data;
  private final long delayNanos;
  public final AtomicLong preads = new AtomicLong();
  public final AtomicLong bytes = new AtomicLong();
  public final AtomicLong largestRead = new AtomicLong();
  /** Preads for which this returns true (given offset and length) fail with EIO; none by default. */
  public volatile BiPredicate<Long, Integer> failing = (offset, length) -> false;

  public SlowDisk(int size, long delayMillis, long seed) {
    this.data = new byte[size];
    new Random(seed).nextBytes(data);
    this.delayNanos = delayMillis * 1_000_000;
  }

  @Override
  public String name() {
    return "slowdisk";
  }

  @Override
  public String description() {
    return "read-only random bytes with a fixed delay per read";
  }

  @Override
  public boolean config(String key, String value) {
    return false;
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
