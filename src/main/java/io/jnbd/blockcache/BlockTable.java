package io.jnbd.blockcache;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.LongAdder;

/**
 * The bookkeeping of a {@link BlockCache}: which block lives in which slot and in what state, the
 * LRU order, pins, and the free slots. No I/O and no waiting: {@link BlockCache} holds its lock
 * around every call, so this class is not thread-safe by itself, and does the I/O outside it.
 *
 * <p>Invariants ({@link #checkInvariants}): every slot is either free, or held by exactly one
 * block that is in the map or dropped but still pinned; slots in use never exceed the capacity;
 * a pinned block is never evicted.
 */
final class BlockTable {
  enum State {
    FILLING,
    CLEAN,
    DIRTY
  }

  static final class Block {
    final long index;
    final int slot;
    State state;
    /** Completed when a FILLING block is stored or abandoned. */
    CompletableFuture<Void> filled;
    /** Readers and writers copying the slot right now; a pinned block is never evicted. */
    int pins;
    /** Removed from the map while pinned: the slot is freed by the last unpin. */
    boolean dropped;
    /** Read by a client since it was filled; only later reads count as uses for the LRU. */
    boolean read;
    /** Non-null while a writer changes the slot; completed when its bytes are in. */
    CompletableFuture<Void> writing;

    Block(long index, int slot, State state, CompletableFuture<Void> filled) {
      this.index = index;
      this.slot = slot;
      this.state = state;
      this.filled = filled;
    }
  }

  private final int capacity;
  private final int highWater;
  private final int lowWater;
  private final LongAdder evictions;
  /** In LRU order, least recently used first; see {@link #touch}. */
  private final LinkedHashMap<Long, Block> blocks = new LinkedHashMap<>();
  private int[] freeSlots = new int[64];
  private int freeCount;
  private int nextFresh;

  /**
   * @param capacity slots in all
   * @param highWater slots in use at which an allocation first evicts clean blocks
   * @param lowWater slots in use that eviction brings the table down to
   * @param evictions counts the blocks evicted
   */
  BlockTable(int capacity, int highWater, int lowWater, LongAdder evictions) {
    this.capacity = capacity;
    this.highWater = highWater;
    this.lowWater = lowWater;
    this.evictions = evictions;
  }

  int capacity() {
    return capacity;
  }

  /** Slots in use: cached or filling blocks, and dropped ones still pinned. */
  int usedSlots() {
    return nextFresh - freeCount;
  }

  Block get(long index) {
    return blocks.get(index);
  }

  /**
   * Puts a new block for {@code index} (which must be absent) into a free slot, evicting clean
   * unpinned blocks at the high threshold; null if every slot is taken.
   */
  Block claim(long index, State state, CompletableFuture<Void> filled) {
    int slot = allocateSlot();
    if (slot < 0) {
      return null;
    }
    Block block = new Block(index, slot, state, filled);
    blocks.put(index, block);
    return block;
  }

  /** The blocks of indices first to last, in index order. */
  List<Block> blocksIn(long first, long last) {
    List<Block> found = new ArrayList<>();
    if (last - first + 1 > blocks.size()) {
      for (Block b : blocks.values()) {
        if (b.index >= first && b.index <= last) {
          found.add(b);
        }
      }
      found.sort((a, b) -> Long.compare(a.index, b.index));
    } else {
      for (long i = first; i <= last; i++) {
        Block b = blocks.get(i);
        if (b != null) {
          found.add(b);
        }
      }
    }
    return found;
  }

  /**
   * Enough of the least recently used unpinned dirty blocks, pinned, to bring usage down to the
   * low threshold once written back; at least one when there is any.
   */
  List<Block> pinOldestDirty() {
    List<Block> dirty = new ArrayList<>();
    int wanted = Math.max(1, usedSlots() - Math.min(lowWater, capacity - 1));
    for (Block b : blocks.values()) {
      if (dirty.size() >= wanted) {
        break;
      }
      if (b.state == State.DIRTY && b.pins == 0) {
        b.pins++;
        dirty.add(b);
      }
    }
    return dirty;
  }

  /** Marks a block as just used: moves it to the most recently used end. */
  void touch(Block b) {
    blocks.remove(b.index);
    blocks.put(b.index, b);
  }

  /**
   * A client read of a block. The first read after a fill does not count as a use: a sequential
   * reader reads each prefetched block once and never again, so those blocks should leave in
   * fill order, ahead of blocks prefetched but not read yet. A second read is a real reuse.
   */
  void touchByRead(Block b) {
    if (b.read) {
      touch(b);
    } else {
      b.read = true;
    }
  }

  /** Removes a block from the map; its slot is free once nobody copies from it. */
  void drop(Block b) {
    if (blocks.get(b.index) == b) {
      blocks.remove(b.index);
    }
    b.dropped = true;
    if (b.pins == 0) {
      freeSlot(b.slot);
    }
  }

  /**
   * Takes one pin off; a dropped block's slot is freed with its last pin.
   *
   * @return true when the block's writer now holds its only pin, and may go on
   */
  boolean unpin(Block b) {
    if (--b.pins == 0 && b.dropped) {
      freeSlot(b.slot);
      return false;
    }
    return b.pins == 1 && b.writing != null;
  }

  private int allocateSlot() {
    if (usedSlots() >= highWater) {
      reclaim();
    }
    if (freeCount > 0) {
      return freeSlots[--freeCount];
    }
    return nextFresh < capacity ? nextFresh++ : -1;
  }

  private void reclaim() {
    var it = blocks.values().iterator();
    while (usedSlots() > lowWater && it.hasNext()) {
      Block b = it.next();
      if (b.state == State.CLEAN && b.pins == 0) {
        it.remove();
        freeSlot(b.slot);
        evictions.increment();
      }
    }
  }

  private void freeSlot(int slot) {
    if (freeCount == freeSlots.length) {
      freeSlots = Arrays.copyOf(freeSlots, freeCount * 2);
    }
    freeSlots[freeCount++] = slot;
  }

  /**
   * Checks the invariants, given the blocks dropped while pinned that callers still hold (the
   * table forgets them until their last unpin).
   *
   * @throws IllegalStateException naming the first invariant broken
   */
  void checkInvariants(List<Block> droppedButPinned) {
    BitSet held = new BitSet();
    int inUse = 0;
    for (var entry : blocks.entrySet()) {
      Block b = entry.getValue();
      check(entry.getKey() == b.index, "block %d is filed under %d", b.index, entry.getKey());
      check(!b.dropped, "dropped block %d is still in the map", b.index);
      check(b.pins >= 0, "block %d has %d pins", b.index, b.pins);
      check(b.slot >= 0 && b.slot < nextFresh, "block %d has slot %d outside 0..%d", b.index, b.slot, nextFresh);
      check(!held.get(b.slot), "slot %d is held twice", b.slot);
      check((b.state == State.FILLING) == (b.filled != null), "block %d is %s with filled=%s", b.index, b.state, b.filled);
      held.set(b.slot);
      inUse++;
    }
    for (Block b : droppedButPinned) {
      check(b.dropped && b.pins > 0, "block %d is not dropped and pinned", b.index);
      check(!held.get(b.slot), "slot %d is held twice", b.slot);
      held.set(b.slot);
      inUse++;
    }
    for (int i = 0; i < freeCount; i++) {
      check(freeSlots[i] >= 0 && freeSlots[i] < nextFresh, "free slot %d was never handed out", freeSlots[i]);
      check(!held.get(freeSlots[i]), "slot %d is both free and held", freeSlots[i]);
      held.set(freeSlots[i]);
    }
    check(held.cardinality() == nextFresh, "%d slots handed out, %d accounted for", nextFresh, held.cardinality());
    check(inUse == usedSlots(), "%d slots held, %d counted in use", inUse, usedSlots());
    check(nextFresh <= capacity, "%d slots handed out of %d", nextFresh, capacity);
  }

  /** The blocks in LRU order, least recently used first, for tests. */
  List<Block> inLruOrder() {
    return List.copyOf(blocks.values());
  }

  private static void check(boolean condition, String problem, Object... args) {
    if (!condition) {
      throw new IllegalStateException(String.format(problem, args));
    }
  }
}
