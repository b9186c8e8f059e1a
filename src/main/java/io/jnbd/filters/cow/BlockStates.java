package io.jnbd.filters.cow;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Where each block of an overlay reads from, one byte per block in pages allocated on first
 * change, so an export of any size costs nothing until written and a terabyte written in 64K
 * blocks costs 16 MiB. A state is published with release semantics after the bytes it points at
 * are in the store, and read with acquire semantics, so a reader that sees {@link #ALLOCATED}
 * also sees the bytes.
 */
final class BlockStates {
  /** Not in the overlay: the block reads from the layer below. */
  static final byte ABSENT = 0;
  /** In the overlay's store. */
  static final byte ALLOCATED = 1;
  /** Trimmed or zeroed as a whole: reads as zeroes, whatever the store or the layer below hold. */
  static final byte ZERO = 2;

  private static final int PAGE_SHIFT = 12;
  private static final int PAGE_MASK = (1 << PAGE_SHIFT) - 1;
  private static final VarHandle ENTRY = MethodHandles.arrayElementVarHandle(byte[].class);

  private final ConcurrentHashMap<Long, byte[]> pages = new ConcurrentHashMap<>();

  byte get(long block) {
    byte[] page = pages.get(block >>> PAGE_SHIFT);
    return page == null ? ABSENT : (byte) ENTRY.getAcquire(page, (int) (block & PAGE_MASK));
  }

  /** Callers changing one block are serialized by the overlay's block locks. */
  void set(long block, byte state) {
    byte[] page = pages.computeIfAbsent(block >>> PAGE_SHIFT, index -> new byte[1 << PAGE_SHIFT]);
    ENTRY.setRelease(page, (int) (block & PAGE_MASK), state);
  }

  /** How many blocks are {@link #ALLOCATED} or {@link #ZERO}; walks every page, for statistics only. */
  long count(byte state) {
    long count = 0;
    for (byte[] page : pages.values()) {
      for (int i = 0; i < page.length; i++) {
        if ((byte) ENTRY.getAcquire(page, i) == state) {
          count++;
        }
      }
    }
    return count;
  }
}
