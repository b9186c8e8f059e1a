package io.jnbd.util;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Direct buffers in power-of-two size classes, reused across requests and connections: the
 * server's request and reply payloads, and the cache filter's fills from below. Socket I/O from a heap buffer copies through a temporary direct buffer; pooling
 * direct buffers keeps the READ path at one copy (plugin into buffer, buffer onto the socket)
 * without allocating a direct buffer per request. What the pool keeps is bounded in bytes;
 * beyond that, a returned buffer is let go. A large buffer ({@link #FREED_AT_ONCE} or more) is
 * the segment of an arena of its own (the FFM API) and its memory is freed at once: left to the
 * collector, it would stay until the next GC, and with a large heap that let a server's RSS
 * climb by gigabytes under a churn of 32 MiB requests. Smaller ones are plain direct buffers,
 * which serve the common request sizes measurably faster (nbdcopy from the memory plugin, one
 * request at a time: ~2400 against ~1500 MiB/s), and whose garbage is small.
 */
public final class DirectBufferPool {
  private static final int MIN_SHIFT = 12;
  private static final int MAX_SHIFT = 25;
  /** Page-aligned, as allocateDirect's buffers are in effect, for O_DIRECT-friendly I/O. */
  private static final long PAGE = 4096;

  private final ConcurrentLinkedDeque<ByteBuffer>[] free;
  /** Buffers at least this large are freed when let go, not left to the garbage collector. */
  static final int FREED_AT_ONCE = 4 << 20;

  /** How to let go of each buffer handed out or kept, by the buffer's address. */
  private final ConcurrentHashMap<Long, Runnable> release = new ConcurrentHashMap<>();
  private final AtomicLong pooledBytes = new AtomicLong();
  private final AtomicLong allocatedBytes = new AtomicLong();
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
      buffer = allocate(capacity);
    } else {
      pooledBytes.addAndGet(-buffer.capacity());
    }
    return buffer.clear().limit(size);
  }

  /**
   * Returns a buffer for reuse, or frees it when the pool is full; the caller must not touch it
   * (or a slice of it) afterwards. Null and buffers the pool did not hand out are ignored.
   */
  public void give(ByteBuffer buffer) {
    if (buffer == null || !buffer.isDirect()) {
      return;
    }
    // A buffer's segment starts at its position: its own start is that far before.
    long address = MemorySegment.ofBuffer(buffer).address() - buffer.position();
    if (!release.containsKey(address)) {
      return;
    }
    if (pooledBytes.addAndGet(buffer.capacity()) > maxPooledBytes) {
      pooledBytes.addAndGet(-buffer.capacity());
      release.remove(address).run();
      allocatedBytes.addAndGet(-buffer.capacity());
      return;
    }
    free[Integer.numberOfTrailingZeros(buffer.capacity()) - MIN_SHIFT].offerFirst(buffer);
  }

  /** Bytes of the buffers handed out or kept (let-go small ones await the collector); for tests. */
  public long allocatedBytes() {
    return allocatedBytes.get();
  }

  private ByteBuffer allocate(int capacity) {
    ByteBuffer buffer;
    if (capacity >= FREED_AT_ONCE) {
      // Shared: a buffer is taken on one thread and given back on another.
      Arena arena = Arena.ofShared();
      MemorySegment segment = arena.allocate(capacity, PAGE);
      buffer = segment.asByteBuffer();
      release.put(segment.address(), arena::close);
    } else {
      buffer = ByteBuffer.allocateDirect(capacity);
      release.put(MemorySegment.ofBuffer(buffer).address(), () -> {});
    }
    allocatedBytes.addAndGet(capacity);
    return buffer;
  }
}
