package io.jnbd.util;

import java.io.InterruptedIOException;
import java.util.ArrayDeque;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A fixed number of permits, handed out in turns among parties rather than in order of asking:
 * when permits are short, each party with someone waiting gets one before any party gets a
 * second. A party is typically one client connection, and the permits a scarce resource all
 * connections share (the http plugin's origin connections): a client that queues hundreds of
 * requests, or one huge read, then costs every other client one turn per round, not the whole
 * queue. Within a party, waiters are served in order of arrival.
 */
public final class RoundRobinPermits {
  private final ReentrantLock lock = new ReentrantLock();
  private int free;
  /** Parties with waiters, in the order of their next turn. */
  private final ArrayDeque<Party> turns = new ArrayDeque<>();

  public RoundRobinPermits(int permits) {
    if (permits <= 0) {
      throw new IllegalArgumentException(permits + " permits");
    }
    this.free = permits;
  }

  /** One party's place in the rotation; a party may be used from any number of threads. */
  public final class Party {
    private final ArrayDeque<Waiter> waiters = new ArrayDeque<>();

    /** Waits for a permit and takes it. */
    public void acquire() throws InterruptedIOException {
      lock.lock();
      try {
        if (free > 0 && turns.isEmpty()) {
          free--;
          return;
        }
        Waiter waiter = new Waiter(lock.newCondition());
        if (waiters.isEmpty()) {
          turns.addLast(this);
        }
        waiters.addLast(waiter);
        while (!waiter.granted) {
          try {
            waiter.turn.await();
          } catch (InterruptedException e) {
            if (waiter.granted) {
              passOn();
            } else {
              waiters.remove(waiter);
              if (waiters.isEmpty()) {
                turns.remove(this);
              }
            }
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a turn");
          }
        }
      } finally {
        lock.unlock();
      }
    }

    /** Gives back a permit taken by {@link #acquire()}. */
    public void release() {
      lock.lock();
      try {
        passOn();
      } finally {
        lock.unlock();
      }
    }
  }

  private static final class Waiter {
    final Condition turn;
    /** Set, with the lock held, when a permit is handed to this waiter. */
    boolean granted;

    Waiter(Condition turn) {
      this.turn = turn;
    }
  }

  public Party newParty() {
    return new Party();
  }

  /** Waiters queued now, over all parties (for tests). */
  public int waiting() {
    lock.lock();
    try {
      return turns.stream().mapToInt(p -> p.waiters.size()).sum();
    } finally {
      lock.unlock();
    }
  }

  /** A permit came back: it goes to the party whose turn is next, else to the free count. */
  private void passOn() {
    Party next = turns.pollFirst();
    if (next == null) {
      free++;
      return;
    }
    Waiter waiter = next.waiters.pollFirst();
    if (!next.waiters.isEmpty()) {
      turns.addLast(next);
    }
    waiter.granted = true;
    waiter.turn.signal();
  }
}
