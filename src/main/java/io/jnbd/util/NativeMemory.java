package io.jnbd.util;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Memory from the C library's allocator, freed when the caller says so: neither the garbage
 * collector nor an arena's close (a handshake with every thread) decides when it goes back. The
 * segments are global (never closed by the JVM), so ByteBuffers made from them do plain I/O with
 * no liveness check; the caller must not touch a segment, or a buffer made from it, after {@link
 * #free}.
 */
public final class NativeMemory {
  private static final Linker LINKER = Linker.nativeLinker();
  private static final MethodHandle CALLOC = LINKER.downcallHandle(
      LINKER.defaultLookup().findOrThrow("calloc"), FunctionDescriptor.of(ADDRESS, JAVA_LONG, JAVA_LONG));
  private static final MethodHandle ALIGNED_ALLOC = LINKER.downcallHandle(
      LINKER.defaultLookup().findOrThrow("aligned_alloc"), FunctionDescriptor.of(ADDRESS, JAVA_LONG, JAVA_LONG));
  private static final MethodHandle FREE = LINKER.downcallHandle(
      LINKER.defaultLookup().findOrThrow("free"), FunctionDescriptor.ofVoid(ADDRESS));

  private NativeMemory() {}

  /** {@code bytes} of zeroes. */
  public static MemorySegment calloc(long bytes) {
    MemorySegment memory;
    try {
      memory = (MemorySegment) CALLOC.invokeExact(1L, bytes);
    } catch (Throwable e) {
      throw new IllegalStateException("calloc failed", e);
    }
    return sized(memory, bytes);
  }

  /** {@code bytes} (a multiple of {@code alignment}) starting at a multiple of {@code alignment}; not cleared. */
  public static MemorySegment aligned(long alignment, long bytes) {
    MemorySegment memory;
    try {
      memory = (MemorySegment) ALIGNED_ALLOC.invokeExact(alignment, bytes);
    } catch (Throwable e) {
      throw new IllegalStateException("aligned_alloc failed", e);
    }
    return sized(memory, bytes);
  }

  public static void free(MemorySegment memory) {
    try {
      FREE.invokeExact(memory);
    } catch (Throwable e) {
      throw new IllegalStateException("free failed", e);
    }
  }

  private static MemorySegment sized(MemorySegment memory, long bytes) {
    if (memory.equals(MemorySegment.NULL)) {
      throw new OutOfMemoryError("the C library could not allocate " + bytes + " bytes");
    }
    return memory.reinterpret(bytes);
  }
}
