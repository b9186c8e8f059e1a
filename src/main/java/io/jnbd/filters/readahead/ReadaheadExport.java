package io.jnbd.filters.readahead;

import io.jnbd.api.Export;
import io.jnbd.api.FilterExport;
import io.jnbd.filters.readahead.StreamTable.Prefetch;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One connection through readahead: each read is shown to the export's {@link StreamTable}, and
 * the prefetches it makes due are sent below as cache requests on virtual threads, through this
 * connection's export. A read that overlaps a prefetch in flight waits for it, so no byte is
 * fetched twice however the layer below schedules the two. A prefetch that fails is only logged; the client's read takes its own
 * path. A prefetch is sent at its send time (see {@link StreamTable}: over a slow layer a burst is
 * spread over one round trip). Closing waits for this connection's prefetches, which use its
 * export below, and drops those not yet sent.
 */
final class ReadaheadExport extends FilterExport {
  private static final Logger log = LoggerFactory.getLogger(ReadaheadExport.class);
  private static final long CLOSE_WAIT_SECONDS = 60;

  private final StreamTable table;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition idle = lock.newCondition();
  /** Signalled at close, so that prefetches waiting for their send time give up at once. */
  private final Condition closing = lock.newCondition();
  private int running;
  private boolean closed;

  ReadaheadExport(Export next, StreamTable table) {
    super(next);
    this.table = table;
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    launch(table.onRead(offset, length));
    for (CompletableFuture<Void> prefetch : table.overlapping(offset, length)) {
      try {
        prefetch.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while waiting for a prefetch");
      } catch (ExecutionException e) {
        // Prefetches complete normally even when they fail; nothing to report.
      }
    }
    long started = table.now();
    next.pread(buffer, offset);
    table.readTook(table.now() - started);
  }

  private void launch(List<Prefetch> prefetches) {
    for (Prefetch prefetch : prefetches) {
      boolean wanted;
      lock.lock();
      try {
        wanted = !closed;
        if (wanted) {
          running++;
        }
      } finally {
        lock.unlock();
      }
      if (wanted) {
        Thread.ofVirtual().name("readahead").start(() -> prefetch(prefetch));
      } else {
        table.cancelled(prefetch);
      }
    }
  }

  /** Waits until the prefetch's send time; false if the connection closes first. */
  private boolean awaitSendTime(Prefetch prefetch) {
    lock.lock();
    try {
      long wait;
      while (!closed && (wait = prefetch.sendAt() - table.now()) > 0) {
        closing.awaitNanos(wait);
      }
      return !closed;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } finally {
      lock.unlock();
    }
  }

  private void prefetch(Prefetch prefetch) {
    if (!awaitSendTime(prefetch)) {
      table.cancelled(prefetch);
      finished();
      return;
    }
    long started = table.now();
    boolean succeeded = false;
    try {
      next.cache(prefetch.offset(), prefetch.length());
      succeeded = true;
    } catch (IOException | RuntimeException e) {
      if (table.stats().errors.sum() == 0) {
        log.warn("readahead: prefetch of {} bytes at {} failed (reads fall back to the normal path; further failures at debug level): {}",
            prefetch.length(), prefetch.offset(), e.toString());
      } else {
        log.debug("readahead: prefetch of {} bytes at {} failed: {}", prefetch.length(), prefetch.offset(), e.toString());
      }
    } finally {
      boolean wantMore;
      lock.lock();
      try {
        wantMore = !closed;
      } finally {
        lock.unlock();
      }
      List<Prefetch> more = table.completed(prefetch, table.now() - started, succeeded, wantMore);
      launch(more);
      finished();
    }
  }

  private void finished() {
    lock.lock();
    try {
      if (--running == 0) {
        idle.signalAll();
      }
    } finally {
      lock.unlock();
    }
  }

  @Override
  public void close() throws IOException {
    lock.lock();
    try {
      closed = true;
      closing.signalAll();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CLOSE_WAIT_SECONDS);
      while (running > 0) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          log.warn("readahead: {} prefetches still running at close", running);
          break;
        }
        idle.awaitNanos(left);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      lock.unlock();
    }
    log.debug("readahead: connection closed; {}", table.stats());
    next.close();
  }
}
