package io.jnbd.filters.cache;

import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Direct buffers for runs read from below before they are copied into slots, kept for reuse in
 * power-of-two size classes: allocating (and zeroing) megabytes per fill would cost more than
 * the copy, and leaving them to the garbage collector lets the process grow.
 */
final class FillBuffers {
  private static final int MIN_SHIFT = 16;
  private static final int MAX_SHIFT = 25;
  private final long maxPooledBytes;
  private final AtomicLong pooledBytes = new AtomicLong();
  @SuppressWarnings("unchecked")
  private final ConcurrentLinkedQueue<ByteBuffer>[] classes = new ConcurrentLinkedQueue[MAX_SHIFT - MIN_SHIFT + 1];

  FillBuffers(long maxPooledBytes) {
    this.maxPooledBytes = maxPooledBytes;
    for (int i = 0; i < classes.length; i++) {
      classes[i] = new ConcurrentLinkedQueue<>();
    }
  }

  static int maxSize() {
    return 1 << MAX_SHIFT;
  }

  /** A buffer with position 0 and limit {@code size}, at most {@link #maxSize()}. */
  ByteBuffer take(int size) {
    int shift = Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(size - 1));
    ByteBuffer buffer = classes[shift - MIN_SHIFT].poll();
    if (buffer == null) {
      buffer = ByteBuffer.allocateDirect(1 << shift);
    } else {
      pooledBytes.addAndGet(-buffer.capacity());
    }
    return buffer.clear().limit(size);
  }

  void give(ByteBuffer buffer) {
    if (pooledBytes.addAndGet(buffer.capacity()) <= maxPooledBytes) {
      classes[Integer.numberOfTrailingZeros(buffer.capacity()) - MIN_SHIFT].add(buffer);
    } else {
      pooledBytes.addAndGet(-buffer.capacity());
    }
  }
}
