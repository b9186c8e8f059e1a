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
 * race for freed memory.
 *
 * <p>Requests larger than a share (up to 32 MiB READs) may hold at most half of the budget
 * together, and wait for that among themselves, in order, before they join the line for the
 * server's budget. Without that lane, a few clients queueing such reads and never reading the
 * replies held the whole budget and stood first in line, and every other client waited behind
 * them until they were dropped, twice over: 17-30 s in the soak benchmark over a 20 ms origin.
 */
final class MemoryBudget {
  private static final long DEFAULT_MAX = 64L << 20;
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
  private final long largeCapacity;
  /** Bytes held by requests larger than a share. */
  private long heldLarge;
  /** Requests larger than a share waiting for room among those, first come first served. */
  private final ArrayDeque<Object> largeLine = new ArrayDeque<>();

  MemoryBudget(long capacity) {
    if (capacity <= 0) {
      throw new IllegalArgumentException("memory budget of " + capacity + " bytes");
    }
    this.capacity = capacity;
    this.connectionShare = Math.min(MAX_CONNECTION_SHARE, capacity / SHARES);
    this.largeCapacity = capacity / 2;
  }

  /**
   * A quarter of the JVM's maximum heap, so that a JVM given little memory gets a budget in
   * proportion; at most 64 MiB, what nbdcopy keeps in flight with its defaults (4 connections, 64
   * requests of 256 KiB each), because the budget is resident memory and more did not copy
   * faster: nbdcopy of 1 GiB from the file plugin peaked at 113 MiB RSS with 256 MiB and 88 MiB
   * with 64, in the same time (docs/cli.md, *Memory*); and at least the largest request, so that
   * the budget is a true bound.
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

  /**
   * True while some connection waits because the whole budget, or the large requests' half of
   * it, is taken (not merely its own share): then connections whose clients do not read their
   * replies are holding others up.
   */
  boolean starved() {
    lock.lock();
    try {
      return !line.isEmpty() || !largeLine.isEmpty();
    } finally {
      lock.unlock();
    }
  }

  /** A new connection's part of the budget, holding nothing yet. */
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
      boolean large = bytes > connectionShare;
      lock.lock();
      try {
        Object largePlace = null;
        Object place = null;
        while (!closed) {
          boolean withinShare = held == 0 || held + bytes <= connectionShare;
          boolean laneOpen = !large
              || (largeLine.isEmpty() || largeLine.peekFirst() == largePlace) && fitsTheLane(bytes);
          if (withinShare && laneOpen && (line.isEmpty() || line.peekFirst() == place) && fitsTheServer(bytes)) {
            break;
          }
          // Only this connection's gives could change the share, and they only add room.
          if (withinShare && large && largePlace == null) {
            largePlace = new Object();
            largeLine.addLast(largePlace);
            continue; // first in that line, it may join the server's line at once
          }
          if (withinShare && laneOpen && place == null) {
            place = new Object();
            line.addLast(place);
          }
          waiting++;
          returned.awaitUninterruptibly();
          waiting--;
        }
        if (place != null || largePlace != null) {
          line.remove(place);
          largeLine.remove(largePlace);
          // The next in line may fit now.
          returned.signalAll();
        }
        if (closed) {
          return false;
        }
        if (large) {
          heldLarge += bytes;
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
        if (bytes > connectionShare) {
          heldLarge -= bytes;
        }
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

    private boolean fitsTheLane(long bytes) {
      return heldLarge == 0 || heldLarge + bytes <= largeCapacity;
    }
  }
}
