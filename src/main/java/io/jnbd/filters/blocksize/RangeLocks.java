package io.jnbd.filters.blocksize;

import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Byte-range locks for the blocksize filter's writes, shared by every connection of the server.
 * A read-modify-write of one block takes its block exclusively, so two unaligned writes to
 * different bytes of one block cannot each write back the other's old bytes. Aligned writes take
 * their range shared: they never wait for each other, only for a read-modify-write of a block
 * they touch, which would otherwise put back what they wrote underneath it. A waiting exclusive
 * range holds back new shared ones, so a stream of aligned writes cannot starve it.
 */
final class RangeLocks {
  /** One held or wanted range: identity matters, two equal ranges are two holders. */
  static final class Range {
    private final long start;
    private final long end;
    private final boolean exclusive;

    private Range(long start, long end, boolean exclusive) {
      this.start = start;
      this.end = end;
      this.exclusive = exclusive;
    }

    private boolean overlaps(Range other) {
      return start < other.end && other.start < end;
    }

    private boolean conflicts(Range other) {
      return (exclusive || other.exclusive) && overlaps(other);
    }
  }

  private final List<Range> held = new ArrayList<>();
  private final List<Range> waitingExclusive = new ArrayList<>();

  Range exclusive(long start, long end) throws InterruptedIOException {
    return acquire(new Range(start, end, true));
  }

  Range shared(long start, long end) throws InterruptedIOException {
    return acquire(new Range(start, end, false));
  }

  synchronized void release(Range range) {
    held.remove(range);
    notifyAll();
  }

  private synchronized Range acquire(Range wanted) throws InterruptedIOException {
    if (wanted.exclusive) {
      waitingExclusive.add(wanted);
    }
    try {
      while (blocked(wanted)) {
        wait();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for a block lock");
    } finally {
      if (wanted.exclusive) {
        waitingExclusive.remove(wanted);
        // Shared ranges held back by this one may go now, whether it got its range or gave up.
        notifyAll();
      }
    }
    held.add(wanted);
    return wanted;
  }

  private boolean blocked(Range wanted) {
    for (Range other : held) {
      if (wanted.conflicts(other)) {
        return true;
      }
    }
    if (!wanted.exclusive) {
      for (Range other : waitingExclusive) {
        if (wanted.overlaps(other)) {
          return true;
        }
      }
    }
    return false;
  }
}
