package io.jnbd.util;

import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Direct buffers in power-of-two size classes, reused across requests and connections: the
 * server's request and reply payloads, and the cache filter's fills from below. Socket I/O from a heap buffer copies through a temporary direct buffer; pooling
 * direct buffers keeps the READ path at one copy (plugin into buffer, buffer onto the socket)
 * without allocating a direct buffer per request. What the pool keeps is bounded in bytes;
 * beyond that, returned buffers are left to the garbage collector.
 */
public final class DirectBufferPool {
  private static final int MIN_SHIFT = 12;
  private static final int MAX_SHIFT = 25;

  private final ConcurrentLinkedDeque<ByteBuffer>[] free;
  private final AtomicLong pooledBytes = new AtomicLong();
  private final long maxPooledBytes;

  @SuppressWarnings("unchecked")
  /** A pool that keeps at most {@code maxPooledBytes} of returned buffers for reuse. */
  public DirectBufferPool(long maxPooledBytes) {
    this.maxPooledBytes = maxPooledBytes;
    free = new ConcurrentLinkedDeque[MAX_SHIFT - MIN_SHIFT + 1];
    for (int i = 0; i < free.length; i++) {
      free[i] = new ConcurrentLinkedDeque<>();
    }
  }

  /** The largest buffer the pool hands out. */
  public static int maxSize() {
    return 1 << MAX_SHIFT;
  }

  /** The capacity of the buffer that {@link #take} hands out for {@code size} bytes. */
  public static int capacityFor(int size) {
    int shift = Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(Math.max(size, 1) - 1));
    if (shift > MAX_SHIFT) {
      throw new IllegalArgumentException("buffer of " + size + " bytes is over the pool's maximum");
    }
    return 1 << shift;
  }

  /** A buffer with position 0 and limit {@code size} (at most {@link #maxSize()}). */
  public ByteBuffer take(int size) {
    int capacity = capacityFor(size);
    ByteBuffer buffer = free[Integer.numberOfTrailingZeros(capacity) - MIN_SHIFT].pollFirst();
    if (buffer == null) {
      buffer = ByteBuffer.allocateDirect(capacity);
    } else {
      pooledBytes.addAndGet(-buffer.capacity());
    }
    return buffer.clear().limit(size);
  }

  /** Returns a buffer for reuse; null and buffers the pool did not hand out are ignored. */
  public void give(ByteBuffer buffer) {
    if (buffer == null || !buffer.isDirect() || Integer.bitCount(buffer.capacity()) != 1) {
      return;
    }
    int shift = Integer.numberOfTrailingZeros(buffer.capacity());
    if (shift < MIN_SHIFT || shift > MAX_SHIFT) {
      return;
    }
    if (pooledBytes.addAndGet(buffer.capacity()) > maxPooledBytes) {
      pooledBytes.addAndGet(-buffer.capacity());
      return;
    }
    free[shift - MIN_SHIFT].offerFirst(buffer);
  }
}
