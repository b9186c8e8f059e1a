package io.jnbd.util;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Direct buffers in power-of-two size classes, reused across requests and connections: the
 * server's request and reply payloads, and the cache filter's fills from below. Socket I/O from a
 * heap buffer copies through a temporary direct buffer; pooling direct buffers keeps the READ
 * path at one copy (plugin into buffer, buffer onto the socket) without allocating a direct
 * buffer per request. What the pool keeps is bounded in bytes; beyond that, a returned buffer is
 * freed. Every buffer is C library memory ({@link NativeMemory}) and is freed at once when let
 * go: left to the collector, direct buffers stay until the next GC, and under a churn of requests
 * the server's RSS climbed by gigabytes (32 MiB requests; and 4-256 KiB ones, 1.8 GiB in the http
 * soak, once the pool kept less). Segments of an arena of their own would be freed at once too,
 * but their buffers pay a liveness check on every socket read and write, and closing a shared
 * arena is a handshake with every thread (nbdcopy from the memory plugin, one request at a time:
 * ~1500 against ~2400 MiB/s).
 */
public final class DirectBufferPool implements AutoCloseable {
  private static final int MIN_SHIFT = 12;
  private static final int MAX_SHIFT = 25;
  /** Page-aligned, as allocateDirect's buffers are in effect, for O_DIRECT-friendly I/O. */
  private static final long PAGE = 4096;

  private final ConcurrentLinkedDeque<ByteBuffer>[] free;

  /** The memory of each buffer handed out or kept, by its address. */
  private final ConcurrentHashMap<Long, MemorySegment> memory = new ConcurrentHashMap<>();
  private final AtomicLong pooledBytes = new AtomicLong();
  private final AtomicLong allocatedBytes = new AtomicLong();
  private final long maxPooledBytes;
  private final long maxHeldBytes;
  private volatile boolean closed;

  /** A pool that keeps at most {@code maxPooledBytes} of returned buffers for reuse. */
  public DirectBufferPool(long maxPooledBytes) {
    this(maxPooledBytes, Long.MAX_VALUE);
  }

  /**
   * A pool that keeps at most {@code maxPooledBytes} of returned buffers for reuse, and keeps one
   * only while the buffers in use and those kept together stay within {@code maxHeldBytes}: with
   * the server's memory budget there, requests and the buffers waiting for them never hold more
   * than the budget between them (the http soak lost ~100 MiB of peak RSS).
   */
  @SuppressWarnings("unchecked")
  public DirectBufferPool(long maxPooledBytes, long maxHeldBytes) {
    this.maxPooledBytes = maxPooledBytes;
    this.maxHeldBytes = maxHeldBytes;
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
    if (!memory.containsKey(address)) {
      return;
    }
    if (pooledBytes.addAndGet(buffer.capacity()) > maxPooledBytes || allocatedBytes.get() > maxHeldBytes || closed) {
      pooledBytes.addAndGet(-buffer.capacity());
      NativeMemory.free(memory.remove(address));
      allocatedBytes.addAndGet(-buffer.capacity());
      return;
    }
    free[Integer.numberOfTrailingZeros(buffer.capacity()) - MIN_SHIFT].offerFirst(buffer);
    if (closed) {
      close();  // a close that ran meanwhile may have missed this one
    }
  }

  /** Frees the buffers kept for reuse, and from now on each buffer given back. */
  @Override
  public void close() {
    closed = true;
    for (ConcurrentLinkedDeque<ByteBuffer> sizeClass : free) {
      for (ByteBuffer buffer; (buffer = sizeClass.pollFirst()) != null; ) {
        pooledBytes.addAndGet(-buffer.capacity());
        allocatedBytes.addAndGet(-buffer.capacity());
        NativeMemory.free(memory.remove(MemorySegment.ofBuffer(buffer).address() - buffer.position()));
      }
    }
  }

  /** Bytes of the buffers handed out or kept. */
  public long allocatedBytes() {
    return allocatedBytes.get();
  }

  private ByteBuffer allocate(int capacity) {
    MemorySegment segment = NativeMemory.aligned(PAGE, capacity);
    memory.put(segment.address(), segment);
    allocatedBytes.addAndGet(capacity);
    return segment.asByteBuffer();
  }
}
