package io.jnbd.server;

import io.jnbd.util.DirectBufferPool;
import java.util.ArrayDeque;
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
 * enough clients that never read can hold any amount unless they are disconnected. Once the
 * budget is full, {@link NbdServer} drops the clients whose replies have not moved for a while;
 * requests are never failed for want of memory.
 *
 * <p>A connection that holds nothing may take one request however large, so a request larger than
 * the share runs (alone on its connection), and so may a request larger than the whole budget
 * when nothing else holds any. The budget therefore bounds memory exactly when it is at least
 * the largest request (32 MiB), as its default is. Requests that wait for the server's budget
 * (not for their own share) are served in order of arrival, so that no connection can lose every
 * race for freed memory. A large request first in line holds up the ones behind it only until
 * enough memory comes back, which clients that read do within moments and clients that never
 * read do once they are dropped.
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
  /** Requests waiting for the server's budget, first come first served. */
  private final ArrayDeque<Object> line = new ArrayDeque<>();

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
      return !line.isEmpty();
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
        Object place = null;
        while (!closed) {
          boolean withinShare = held == 0 || held + bytes <= connectionShare;
          if (withinShare && (line.isEmpty() || line.peekFirst() == place) && fitsTheServer(bytes)) {
            break;
          }
          if (withinShare && place == null) {
            // Only this connection's gives could change the share, and they only add room.
            place = new Object();
            line.addLast(place);
          }
          waiting++;
          returned.awaitUninterruptibly();
          waiting--;
        }
        if (place != null) {
          line.remove(place);
          // The next in line may fit now.
          returned.signalAll();
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

    private boolean fitsTheServer(long bytes) {
      return used == 0 || used + bytes <= capacity;
    }
  }
}
