package io.jnbd.server;

import io.jnbd.util.DirectBufferPool;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The memory that requests hold, over every connection of a server: a WRITE's payload from the
 * moment the connection's reader takes it off the wire until the export has it, a READ's data
 * until its reply has been written, the scratch buffer of an emulated CACHE. A connection's reader
 * takes a request's bytes before it reads the payload or starts the request, and waits while they
 * are not to be had: meanwhile the connection is not read, so its client is held back by TCP, and
 * no request fails for want of memory.
 *
 * <p>Each connection may hold at most a share of the budget: a sixteenth, and no more than 64 MiB
 * (room for 64 requests of 1 MiB, so a large budget does not let one client tie up more). The
 * share is what keeps clients that stop reading their replies from starving the others. The
 * buffers of replies that cannot be written stay held, so such a client soon holds its whole
 * share, and its reader then waits for its own share to come back, taking nothing more from the
 * server's budget. It takes sixteen such clients to fill the budget (fewer if their requests are
 * larger than a share); until then every other client is served. No scheme of shares or
 * reservations can guarantee more: a reply's memory comes back only when the reply is sent, so
 * enough clients that never read can hold any amount, unless requests are failed or clients are
 * disconnected, which jnbd (like nbdkit) does not do. Once the budget is full, requests wait until
 * one of those clients reads or goes away.
 *
 * <p>A connection that holds nothing may take one request however large, so a request larger than
 * the share runs (alone on its connection), and so may a request larger than the whole budget
 * when nothing else holds any. The budget therefore bounds memory exactly when it is at least
 * the largest request (32 MiB), as its default is. Waiting requests are not served in order of
 * arrival: one that fits goes ahead of a larger one that does not, so a large request waiting for
 * memory that stuck clients hold does not hold up the small ones of other clients.
 */
final class MemoryBudget {
  private static final long DEFAULT_MAX = 256L << 20;
  private static final long MAX_CONNECTION_SHARE = 64L << 20;
  private static final int SHARES = 16;

  private final long capacity;
  private final long connectionShare;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition returned = lock.newCondition();
  private long used;
  private long peakUsed;
  private int waiting;
  /** Waiters that the whole budget, not their connection's share, holds up. */
  private int starved;

  MemoryBudget(long capacity) {
    if (capacity <= 0) {
      throw new IllegalArgumentException("memory budget of " + capacity + " bytes");
    }
    this.capacity = capacity;
    this.connectionShare = Math.min(MAX_CONNECTION_SHARE, capacity / SHARES);
  }

  /**
   * A quarter of the JVM's maximum heap, which is also the JVM's default limit on direct memory,
   * leaving the rest of that limit to the buffer pool and to plugins and filters; at most 256 MiB,
   * which is sixteen connections each with 64 requests of 256 KiB (nbdcopy's defaults) in flight;
   * and at least the largest request, so that the budget is a true bound.
   */
  static long defaultCapacity() {
    long quarterOfMaxMemory = Runtime.getRuntime().maxMemory() / 4;
    return Math.max(DirectBufferPool.maxSize(), Math.min(DEFAULT_MAX, quarterOfMaxMemory));
  }

  long capacity() {
    return capacity;
  }

  long connectionShare() {
    return connectionShare;
  }

  /** Bytes held by requests now. */
  long used() {
    lock.lock();
    try {
      return used;
    } finally {
      lock.unlock();
    }
  }

  /** The most bytes requests have held at once. */
  long peakUsed() {
    lock.lock();
    try {
      return peakUsed;
    } finally {
      lock.unlock();
    }
  }

  /** A new connection's part of the budget, holding nothing yet. */
  /**
   * True while some connection waits because the whole budget is taken (not merely its own
   * share): then connections whose clients do not read their replies are holding others up.
   */
  boolean starved() {
    lock.lock();
    try {
      return starved > 0;
    } finally {
      lock.unlock();
    }
  }

  Account openAccount() {
    return new Account();
  }

  /** What one connection holds. Its reader takes; its requests give back when answered. */
  final class Account {
    private long held;
    private boolean closed;

    /**
     * Takes bytes for one request, waiting until this connection's share and the server's budget
     * both have room for them. Returns false, having taken nothing, once the account is closed.
     */
    boolean take(long bytes) {
      if (bytes == 0) {
        return true;
      }
      lock.lock();
      try {
        while (!closed && !fits(bytes)) {
          boolean forTheServer = !fitsTheServer(bytes);
          waiting++;
          starved += forTheServer ? 1 : 0;
          returned.awaitUninterruptibly();
          starved -= forTheServer ? 1 : 0;
          waiting--;
        }
        if (closed) {
          return false;
        }
        held += bytes;
        used += bytes;
        peakUsed = Math.max(peakUsed, used);
        return true;
      } finally {
        lock.unlock();
      }
    }

    void give(long bytes) {
      if (bytes == 0) {
        return;
      }
      lock.lock();
      try {
        held -= bytes;
        used -= bytes;
        if (waiting > 0) {
          // Any waiter may fit now, not only the longest waiting.
          returned.signalAll();
        }
      } finally {
        lock.unlock();
      }
    }

    /** Makes a waiting {@link #take}, and any later one, give up: the connection is stopping. */
    void close() {
      lock.lock();
      try {
        closed = true;
        returned.signalAll();
      } finally {
        lock.unlock();
      }
    }

    private boolean fits(long bytes) {
      return (held == 0 || held + bytes <= connectionShare) && fitsTheServer(bytes);
    }

    private boolean fitsTheServer(long bytes) {
      return used == 0 || used + bytes <= capacity;
    }
  }
}
