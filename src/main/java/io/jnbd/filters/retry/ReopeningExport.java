package io.jnbd.filters.retry;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One connection through the retry filter: when a request fails, the export below is closed and
 * opened again, and the request retried on the new one.
 *
 * <p>Requests run in parallel under the read side of {@link #gate}; a reopen takes the write
 * side, so it waits for the requests still running on the old export, and requests that arrive
 * meanwhile wait for the new one instead of meeting a closed export. Requests that failed on the
 * same export share one reopen: each one remembers the generation it failed on, and whoever
 * gets {@link #reopening} second finds the generation moved on and simply tries again.
 *
 * <p>A READ whose bytes the export below handed over without a copy is read as its reply goes
 * out, after the attempt: an export that a reopen replaces is closed only once the server has
 * given back all it handed over ({@link Lent}).
 */
final class ReopeningExport extends RetryingExport {
  private static final Logger log = LoggerFactory.getLogger(ReopeningExport.class);

  private final Layer layer;
  private final boolean readOnly;
  private final String exportName;
  private final boolean reopenReadOnly;
  private final Sleeper sleeper;
  private final ReentrantReadWriteLock gate = new ReentrantReadWriteLock();
  private final ReentrantLock reopening = new ReentrantLock();
  /** Null after a reopen that failed: every attempt then fails until the next reopen works. */
  private Export current;
  /** What {@link #current} has handed over and the server not yet given back. */
  private Lent lent;
  /** What a reopened export offers; null for the first, which the server checks requests against. */
  private Offer reopenedOffer;
  private volatile long generation;

  ReopeningExport(Export first, Layer layer, boolean readOnly, String exportName, RetryPolicy policy,
      boolean reopenReadOnly, Sleeper sleeper) throws IOException {
    super("retry", policy, Offer.of(first));
    this.current = first;
    this.lent = new Lent(first);
    this.layer = layer;
    this.readOnly = readOnly;
    this.exportName = exportName;
    this.reopenReadOnly = reopenReadOnly;
    this.sleeper = sleeper;
  }

  @Override
  Failure attempt(Request request, Attempt attempt) throws IOException {
    gate.readLock().lock();
    try {
      long tried = generation;
      if (reopenReadOnly && tried > 0 && request.operation().writes()) {
        throw new NbdException(Errno.EROFS, "retry: " + request + ": retry-readonly: the export was reopened read-only after a failure");
      }
      try {
        if (current == null) {
          throw new NbdException(Errno.ESHUTDOWN, "retry: " + request + ": the export could not be reopened");
        }
        if (reopenedOffer != null) {
          reopenedOffer.check(request);
        }
        attempt.run(current);
        return null;
      } catch (IOException e) {
        return new Failure(e, tried);
      }
    } finally {
      gate.readLock().unlock();
    }
  }

  @Override
  boolean recover(Failure failure, Duration delay) throws InterruptedException {
    reopening.lock();
    try {
      if (generation != failure.generation()) {
        return false;
      }
      gate.writeLock().lockInterruptibly();
      try {
        sleeper.sleep(delay);
        reopen();
        return true;
      } finally {
        gate.writeLock().unlock();
      }
    } finally {
      reopening.unlock();
    }
  }

  /** Called in an attempt, under the read side of the gate: {@link #current} is the export that answered. */
  @Override
  ReadData keepingBelow(ReadData handedOver) {
    return lent.track(handedOver);
  }

  /** Replaces the export below; called with the write side of the gate held. */
  private void reopen() {
    closeCurrent();
    generation++;
    Export fresh = null;
    try {
      fresh = layer.open(readOnly || reopenReadOnly, exportName);
      reopenedOffer = Offer.of(fresh);
      current = fresh;
      lent = new Lent(fresh);
      log.debug("retry: reopened export '{}' (reopen {})", exportName, generation);
    } catch (IOException | RuntimeException e) {
      log.debug("retry: reopening export '{}' failed: {}", exportName, e.getMessage());
      if (fresh != null) {
        closeQuietly(fresh);
      }
    }
  }

  private void closeCurrent() {
    if (current != null) {
      lent.retire();
      current = null;
      reopenedOffer = null;
    }
  }

  /**
   * The READs that one export below handed over and the server has not given back. Once a
   * reopen has retired the export, the last of them to come back closes it.
   */
  private static final class Lent {
    private final Export export;
    private int out;
    private boolean retired;

    Lent(Export export) {
      this.export = export;
    }

    /**
     * {@code handedOver}, its views counted until their close; zeroes hold nothing of the export
     * (and file regions do not come this far: {@link RetryingExport#readData}).
     */
    ReadData track(ReadData handedOver) {
      if (!(handedOver instanceof ReadData.Views views)) {
        return handedOver;
      }
      lend();
      return new ReadData.Views(views.buffers(), views.length(), () -> giveBack(views));
    }

    private synchronized void lend() {
      out++;
    }

    private void giveBack(ReadData handedOver) {
      try {
        handedOver.close();
      } finally {
        boolean last;
        synchronized (this) {
          last = --out == 0 && retired;
        }
        if (last) {
          closeQuietly(export);
        }
      }
    }

    void retire() {
      boolean idle;
      synchronized (this) {
        retired = true;
        idle = out == 0;
      }
      if (idle) {
        closeQuietly(export);
      }
    }
  }

  private static void closeQuietly(Export export) {
    try {
      export.close();
    } catch (IOException | RuntimeException e) {
      log.debug("retry: closing the failed export: {}", e.getMessage());
    }
  }

  @Override
  public void close() throws IOException {
    gate.writeLock().lock();
    try {
      Export last = current;
      current = null;
      if (last != null) {
        last.close();
      }
    } finally {
      gate.writeLock().unlock();
    }
  }
}
