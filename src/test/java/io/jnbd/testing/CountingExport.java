package io.jnbd.testing;

import io.jnbd.api.Export;
import io.jnbd.api.FilterExport;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Wraps an export to count the reads and writes that reach it, and optionally to hold every
 * read until a latch opens, so tests can pile requests up behind one in-flight read.
 */
public final class CountingExport extends FilterExport {
  public final AtomicLong preads = new AtomicLong();
  public final AtomicLong readBytes = new AtomicLong();
  public final AtomicLong pwrites = new AtomicLong();
  public final CountDownLatch readStarted = new CountDownLatch(1);
  public volatile CountDownLatch gate;

  public CountingExport(Export next) {
    super(next);
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    preads.incrementAndGet();
    readBytes.addAndGet(buffer.remaining());
    readStarted.countDown();
    CountDownLatch g = gate;
    if (g != null) {
      try {
        g.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException();
      }
    }
    next.pread(buffer, offset);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    pwrites.incrementAndGet();
    next.pwrite(buffer, offset, flags);
  }
}
