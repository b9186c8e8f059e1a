package io.jnbd.filters.cow;

import static io.jnbd.filters.cow.BlockStates.ABSENT;
import static io.jnbd.filters.cow.BlockStates.ALLOCATED;
import static io.jnbd.filters.cow.BlockStates.ZERO;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.ReadData;
import io.jnbd.util.DirectBufferPool;
import io.jnbd.util.Emulation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * One export's copy-on-write overlay, shared by every connection to it, so that all of them see
 * one disk. The export is cut into blocks; a block is absent (read from the layer below),
 * allocated (its bytes are in the {@link OverlayStore}) or zero. Nothing is ever written below.
 *
 * <ul>
 *   <li><b>Changes hold the block.</b> A write, zero or trim, and copying a block in on read or
 *       cache, holds that block's lock exclusively for the whole change, including the read
 *       below that a partial write to an absent block needs. Two partial writes to one block
 *       therefore never lose each other's bytes, and a block copied from below never lands on
 *       one written meanwhile.
 *   <li><b>Readers see whole versions.</b> A reader holds an allocated block's lock shared while
 *       it copies the block out, so it gets the bytes from before or after a write, never half
 *       of each. Absent blocks are read below without a lock, one read per run of them: the layer
 *       below never changes, so a reader racing a write gets the old bytes.
 *   <li><b>No deadlock.</b> A thread holds one block lock at a time. Blocks share a fixed set of
 *       locks, neighbours never the same one.
 *   <li><b>States only move forward.</b> An absent block becomes allocated or zero, and those
 *       two alternate; none goes back to absent, so a block once seen present stays present.
 * </ul>
 */
final class Overlay implements AutoCloseable {
  private static final int LOCKS = 256;
  /** The most read below at once when copying blocks in. */
  private static final int MAX_COPY = DirectBufferPool.maxSize();

  private final long size;
  private final int blockSize;
  private final int shift;
  private final BlockStates states = new BlockStates();
  private final OverlayStore store;
  private final ReentrantReadWriteLock[] locks = new ReentrantReadWriteLock[LOCKS];
  private final DirectBufferPool buffers = new DirectBufferPool(32L << 20);

  /** @param directory where a file store is created */
  Overlay(long size, int blockSize, boolean inMemory, Path directory) throws IOException {
    this.size = size;
    this.blockSize = blockSize;
    this.shift = Integer.numberOfTrailingZeros(blockSize);
    this.store = OverlayStore.create(inMemory, blockSize, directory);
    for (int i = 0; i < LOCKS; i++) {
      locks[i] = new ReentrantReadWriteLock();
    }
  }

  long size() {
    return size;
  }

  int blockSize() {
    return blockSize;
  }

  /** Fills {@code dst} with the bytes at {@code offset}; with {@code copyIn}, absent blocks read are kept. */
  void read(Export below, ByteBuffer dst, long offset, boolean copyIn) throws IOException {
    int base = dst.position();
    long end = offset + dst.remaining();
    long at = offset;
    while (at < end) {
      long block = at >>> shift;
      long to;
      if (states.get(block) == ABSENT) {
        to = absentRunEnd(block, end);
        ByteBuffer part = dst.slice(base + (int) (at - offset), (int) (to - at));
        if (copyIn) {
          copyIn(below, at, to, part);
        } else {
          below.pread(part, at);
        }
      } else {
        to = Math.min(end, blockEnd(block));
        readPresent(block, (int) (at - blockStart(block)), dst.slice(base + (int) (at - offset), (int) (to - at)));
      }
      at = to;
    }
    dst.position(dst.limit());
  }

  /**
   * The layer below's answer to {@code readData} for a range that lies wholly in absent blocks;
   * null for a range with blocks in the overlay, which {@link #read} copies. A block may leave
   * the absent state meanwhile, as it may during {@link #read}: the layer below is never written,
   * so such a read gives the bytes from before the write that raced it.
   */
  ReadData readDataBelow(Export below, long offset, int length) throws IOException {
    long end = offset + length;
    long first = offset >>> shift;
    return states.get(first) == ABSENT && absentRunEnd(first, end) == end ? below.readData(offset, length) : null;
  }

  private void readPresent(long block, int at, ByteBuffer dst) throws IOException {
    Lock lock = lockOf(block).readLock();
    lock.lock();
    try {
      if (states.get(block) == ALLOCATED) {
        store.read(block, at, dst);
      } else {
        Emulation.fillZeroes(dst);
      }
    } finally {
      lock.unlock();
    }
  }

  /** Writes the remaining bytes of {@code src} at {@code offset} into the overlay. */
  void write(Export below, ByteBuffer src, long offset) throws IOException {
    int base = src.position();
    change(offset, src.remaining(), (block, from, to, whole) -> {
      ByteBuffer part = src.slice(base + (int) (blockStart(block) + from - offset), to - from);
      if (whole) {
        store.write(block, 0, part);
        states.set(block, ALLOCATED);
      } else if (states.get(block) == ALLOCATED) {
        store.write(block, from, part);
      } else {
        rewrite(below, block, copy -> copy.put(from, part, 0, part.remaining()));
      }
    });
    src.position(src.limit());
  }

  /**
   * Makes the range read as zeroes. With {@code mayTrim}, whole blocks just change state; without
   * it the client asked for allocated zeroes (NO_HOLE), so they are written into the store.
   */
  void zero(Export below, long offset, long length, boolean mayTrim) throws IOException {
    change(offset, length, (block, from, to, whole) -> {
      byte state = states.get(block);
      if (whole && mayTrim) {
        makeZero(block);
      } else if (whole || state == ALLOCATED) {
        ByteBuffer zeroes = buffers.take(to - from);
        try {
          store.write(block, from, Emulation.fillZeroes(zeroes));
        } finally {
          buffers.give(zeroes);
        }
        states.set(block, ALLOCATED);
      } else if (state == ABSENT) {
        rewrite(below, block, copy -> Emulation.fillZeroes(copy.slice(from, to - from)));
      }
    });
  }

  /** Drops the blocks the range covers whole, which then read as zeroes; parts of blocks are left. */
  void trim(long offset, long length) throws IOException {
    change(offset, length, (block, from, to, whole) -> {
      if (whole) {
        makeZero(block);
      }
    });
  }

  /** Copies the absent blocks that the range touches from below into the overlay. */
  void copyIn(Export below, long offset, long length) throws IOException {
    forEachAbsentRun(offset, offset + length, (from, to) -> copyIn(below, from, to, null));
  }

  /** Calls {@code action} for each run of absent blocks in the range, clipped to the range. */
  void forEachAbsentRun(long offset, long end, RunAction action) throws IOException {
    long at = offset;
    while (at < end) {
      long block = at >>> shift;
      if (states.get(block) == ABSENT) {
        long to = absentRunEnd(block, end);
        action.run(at, to);
        at = to;
      } else {
        at = Math.min(end, blockEnd(block));
      }
    }
  }

  /**
   * Reports allocation: allocated blocks as data, zero blocks as holes, and runs of absent blocks
   * as the layer below reports them (or as data when it cannot).
   */
  void extents(Export below, boolean belowHasExtents, long offset, long length, int flags, Extents out)
      throws IOException {
    long end = offset + length;
    long at = offset;
    while (at < end) {
      long block = at >>> shift;
      byte state = states.get(block);
      if (state == ABSENT) {
        long to = absentRunEnd(block, end);
        if (belowHasExtents && !copyExtents(below, at, to, flags, out)) {
          return;
        }
        if (!belowHasExtents) {
          out.add(at, to - at, Extents.DATA);
        }
        at = to;
      } else {
        long to = Math.min(end, blockEnd(block));
        out.add(at, to - at, state == ALLOCATED ? Extents.DATA : Extents.HOLE_ZERO);
        at = to;
      }
      if (Flags.has(flags, Flags.REQ_ONE)) {
        return;
      }
    }
  }

  /** @return whether below reported the whole run, so that more may follow it */
  private static boolean copyExtents(Export below, long from, long to, int flags, Extents out) throws IOException {
    Extents run = new Extents(from, to);
    below.extents(from, to - from, flags, run);
    if (run.count() == 0) {
      out.add(from, to - from, Extents.DATA);
      return true;
    }
    long at = from;
    for (int i = 0; i < run.count(); i++) {
      out.add(at, run.length(i), run.type(i));
      at += run.length(i);
    }
    return at >= to;
  }

  /** How many blocks the overlay holds, and how many read as zeroes; walks the block map. */
  String stats() {
    return states.count(ALLOCATED) + " blocks of " + blockSize + " bytes written, " + states.count(ZERO) + " zeroed";
  }

  /** Where a block reads from now; for tests. */
  byte state(long block) {
    return states.get(block);
  }

  @Override
  public void close() throws IOException {
    buffers.close();
    store.close();
  }

  interface RunAction {
    void run(long from, long to) throws IOException;
  }

  private interface BlockChange {
    /** Changes [from, to) of the block, with its lock held; whole when that is all of it. */
    void apply(long block, int from, int to, boolean whole) throws IOException;
  }

  private interface Edit {
    void apply(ByteBuffer block);
  }

  private void change(long offset, long length, BlockChange change) throws IOException {
    long end = offset + length;
    long at = offset;
    while (at < end) {
      long block = at >>> shift;
      long start = blockStart(block);
      long blockEnd = blockEnd(block);
      long to = Math.min(end, blockEnd);
      Lock lock = lockOf(block).writeLock();
      lock.lock();
      try {
        change.apply(block, (int) (at - start), (int) (to - start), at == start && to == blockEnd);
      } finally {
        lock.unlock();
      }
      at = to;
    }
  }

  /** Read-modify-write of a block not allocated yet: its current bytes, edited, stored whole. */
  private void rewrite(Export below, long block, Edit edit) throws IOException {
    ByteBuffer copy = buffers.take(blockLength(block));
    try {
      if (states.get(block) == ABSENT) {
        below.pread(copy, blockStart(block));
        copy.flip();
      } else {
        Emulation.fillZeroes(copy);
      }
      edit.apply(copy);
      store.write(block, 0, copy);
      states.set(block, ALLOCATED);
    } finally {
      buffers.give(copy);
    }
  }

  private void makeZero(long block) {
    if (states.get(block) != ZERO) {
      states.set(block, ZERO);
      store.release(block);
    }
  }

  /**
   * Reads the blocks holding [from, to) below, in pieces of up to {@link #MAX_COPY} bytes, keeps
   * those still absent, and copies [from, to) into {@code dst} when it is not null.
   */
  private void copyIn(Export below, long from, long to, ByteBuffer dst) throws IOException {
    long first = from >>> shift;
    long last = (to - 1) >>> shift;
    long perPiece = Math.max(1, MAX_COPY >>> shift);
    for (long block = first; block <= last; block += perPiece) {
      long pieceLast = Math.min(last, block + perPiece - 1);
      long pieceStart = blockStart(block);
      long pieceEnd = blockEnd(pieceLast);
      ByteBuffer piece = buffers.take((int) (pieceEnd - pieceStart));
      try {
        below.pread(piece, pieceStart);
        if (dst != null) {
          long copyFrom = Math.max(from, pieceStart);
          long copyTo = Math.min(to, pieceEnd);
          dst.put((int) (copyFrom - from), piece, (int) (copyFrom - pieceStart), (int) (copyTo - copyFrom));
        }
        for (long b = block; b <= pieceLast; b++) {
          keepIfAbsent(b, piece.slice((int) (blockStart(b) - pieceStart), blockLength(b)));
        }
      } finally {
        buffers.give(piece);
      }
    }
  }

  private void keepIfAbsent(long block, ByteBuffer bytes) throws IOException {
    Lock lock = lockOf(block).writeLock();
    lock.lock();
    try {
      if (states.get(block) == ABSENT) {
        store.write(block, 0, bytes);
        states.set(block, ALLOCATED);
      }
    } finally {
      lock.unlock();
    }
  }

  /** Where the run of absent blocks starting at {@code block} ends, at most {@code end}. */
  private long absentRunEnd(long block, long end) {
    long last = (end - 1) >>> shift;
    long next = block + 1;
    while (next <= last && states.get(next) == ABSENT) {
      next++;
    }
    return next > last ? end : blockStart(next);
  }

  private long blockStart(long block) {
    return block << shift;
  }

  /** The end of the block, or of the export for a short last block. */
  private long blockEnd(long block) {
    long start = blockStart(block);
    return size - start <= blockSize ? size : start + blockSize;
  }

  private int blockLength(long block) {
    return (int) (blockEnd(block) - blockStart(block));
  }

  private ReentrantReadWriteLock lockOf(long block) {
    return locks[(int) (block & (LOCKS - 1))];
  }
}
