package io.jnbd.blockcache;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.blockcache.BlockTable.Block;
import io.jnbd.blockcache.BlockTable.State;
import io.jnbd.util.DirectBufferPool;
import io.jnbd.util.Emulation;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One export's cache, shared by every connection to it: blocks of {@link
 * CacheSettings#blockSize()} bytes kept in the slots of a {@link SlotStore}.
 *
 * <ul>
 *   <li><b>Block table and LRU.</b> A {@link BlockTable} maps block numbers to blocks (slot,
 *       state, pins) in LRU order: writes and repeated reads move a block to the recent end,
 *       while the first read of a filled block does not, so blocks a sequential reader has
 *       passed leave before prefetched blocks it has yet to reach. This class holds the lock
 *       guarding the table only for bookkeeping, never during I/O, and does the I/O.
 *   <li><b>Slots.</b> A bounded cache has {@code maxSize / blockSize} slots. When an allocation
 *       finds the high threshold reached, clean unpinned blocks are evicted, least recently used
 *       first, down to the low threshold. Dirty blocks are written below only by writers and
 *       flush, which hold the write lock, so a reader never waits behind a write-back.
 *   <li><b>Fills.</b> Missing blocks of a cache request (or a cache-on-read read) are claimed in
 *       the map as FILLING, grouped into contiguous runs of up to {@link #MAX_RUN} bytes, and each
 *       run is ONE read below. Anyone else wanting a FILLING block waits for its future, so a
 *       block is fetched once however many requests want it.
 *   <li><b>No stale data.</b> Writes, trims and zeroes run one at a time under the write lock;
 *       each first waits for the fills in its range (which then read the old data and are
 *       overwritten or dropped by it), and no fill starts while one runs, since it could read
 *       below what the write is replacing. Reads that miss go straight below.
 *   <li><b>No torn or foreign data.</b> A writer changes a slot only while it alone holds the
 *       block: it marks the block as being written, waits for the readers already copying from it
 *       to finish, and publishes the new state when its bytes are in. Readers that arrive
 *       meanwhile wait for it. A new block is never visible with a slot that still holds what a
 *       previous block left there, so a read returns a block's old or new bytes, nothing else.
 * </ul>
 */
public final class BlockCache implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(BlockCache.class);
  /** The largest single read below for a fill, and the largest write-back run. */
  public static final int MAX_RUN = DirectBufferPool.maxSize();
  /** How often a read waits for other fills before reading what is still missing itself. */
  private static final int MAX_ATTEMPTS = 3;

  /** Consecutive blocks filled by one read below. */
  private static final class Run {
    final List<Block> blocks = new ArrayList<>();
    final CompletableFuture<Void> done = new CompletableFuture<>();
  }

  private final CacheSettings settings;
  private final long size;
  private final int blockSize;
  private final int shift;
  private final SlotStore store;
  private final DirectBufferPool buffers = new DirectBufferPool(32L << 20);
  private final CacheStats stats = new CacheStats();
  /** Guards the table and {@link #mutating}; held only for bookkeeping, never during I/O. */
  private final ReentrantLock lock = new ReentrantLock();
  /** Signalled when a block being written has no pins left but its writer's. */
  private final Condition drained = lock.newCondition();
  private final BlockTable table;
  /** A write, trim or zero is running: no fill may start, it could read what the write replaces. */
  private boolean mutating;
  /** Serializes writes, trims, zeroes, flushes and write-backs. */
  private final ReentrantLock writeLock = new ReentrantLock();

  public BlockCache(CacheSettings settings, long exportSize) throws IOException {
    this.settings = settings;
    this.size = exportSize;
    this.blockSize = settings.blockSize();
    this.shift = Integer.numberOfTrailingZeros(blockSize);
    long exportBlocks = Math.max(1, (exportSize + blockSize - 1) >>> shift);
    long slots = settings.maxSize() > 0 ? Math.max(1, settings.maxSize() >>> shift) : exportBlocks;
    slots = Math.min(slots, exportBlocks);
    if (slots > Integer.MAX_VALUE - 8) {
      throw new ConfigException("cache: too many blocks; raise cache-min-block-size or set cache-max-size");
    }
    int capacity = (int) slots;
    if (settings.maxSize() > 0) {
      int highWater = Math.max(1, (int) ((long) capacity * settings.highThreshold() / 100));
      int lowWater = Math.min(highWater - 1, (int) ((long) capacity * settings.lowThreshold() / 100));
      this.table = new BlockTable(capacity, highWater, lowWater, stats.evictions);
    } else {
      this.table = new BlockTable(capacity, Integer.MAX_VALUE, Integer.MAX_VALUE, stats.evictions);
    }
    this.store = SlotStore.create(settings.inMemory(), blockSize, capacity);
  }

  public CacheSettings settings() {
    return settings;
  }

  public CacheStats stats() {
    return stats;
  }

  /** Slots in use (cached or being filled), for tests and the debug log. */
  public int usedSlots() {
    lock.lock();
    try {
      return table.usedSlots();
    } finally {
      lock.unlock();
    }
  }

  public int capacity() {
    return table.capacity();
  }

  /** Checks the table's invariants; for tests, at a moment when no request is running. */
  void checkInvariants() {
    lock.lock();
    try {
      table.checkInvariants(List.of());
    } finally {
      lock.unlock();
    }
  }

  // ---- reads -------------------------------------------------------------------------------

  /** Fills {@code dst} with the bytes at {@code offset}: cached blocks from slots, the rest from below. */
  public void read(Export below, ByteBuffer dst, long offset) throws IOException {
    int length = dst.remaining();
    if (length == 0) {
      return;
    }
    long first = offset >>> shift;
    Block[] found = new Block[(int) (((offset + length - 1) >>> shift) - first + 1)];
    boolean waited = false;
    for (int attempt = 0; ; ) {
      List<CompletableFuture<Void>> inFlight = new ArrayList<>();
      List<CompletableFuture<Void>> writes = new ArrayList<>();
      boolean missing = false;
      lock.lock();
      try {
        for (int i = 0; i < found.length; i++) {
          Block b = table.get(first + i);
          if (b == null) {
            missing = true;
          } else if (b.writing != null) {
            writes.add(b.writing);
          } else if (b.state == State.FILLING) {
            inFlight.add(b.filled);
          } else {
            b.pins++;
            found[i] = b;
          }
        }
      } finally {
        lock.unlock();
      }
      if (!writes.isEmpty()) {
        // The only current copy of a block being written is the one its writer is making.
        unpinAll(found, false);
        awaitAll(writes);
        waited = true;
        continue;
      }
      boolean complete = !missing && inFlight.isEmpty();
      if (!complete && attempt++ < MAX_ATTEMPTS && (!inFlight.isEmpty() || settings.cacheOnRead())) {
        unpinAll(found, false);
        if (!inFlight.isEmpty()) {
          awaitAll(inFlight);
          waited = true;
        } else {
          try {
            fill(below, offset, length, dst);
          } catch (IOException e) {
            // The read below reports its own error, if it is still there.
          }
        }
        continue;
      }
      try {
        serve(below, dst, offset, first, found);
      } finally {
        unpinAll(found, true);
      }
      (complete ? (waited ? stats.waits : stats.hits) : stats.misses).increment();
      return;
    }
  }

  /** Copies pinned blocks from their slots and reads each run of the others below at once. */
  private void serve(Export below, ByteBuffer dst, long offset, long first, Block[] found) throws IOException {
    long end = offset + dst.remaining();
    int base = dst.position();
    int i = 0;
    while (i < found.length) {
      long blockStart = (first + i) << shift;
      long from = Math.max(offset, blockStart);
      if (found[i] != null) {
        long to = Math.min(end, blockStart + blockSize);
        store.read(found[i].slot, (int) (from - blockStart), dst.slice(base + (int) (from - offset), (int) (to - from)));
        i++;
      } else {
        int j = i;
        while (j < found.length && found[j] == null) {
          j++;
        }
        long to = Math.min(end, (first + j) << shift);
        readBelow(below, dst.slice(base + (int) (from - offset), (int) (to - from)), from);
        i = j;
      }
    }
    dst.position(dst.limit());
  }

  private void readBelow(Export below, ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    below.pread(buffer, offset);
    stats.originReads.increment();
    stats.originBytes.add(length);
  }

  // ---- fills -------------------------------------------------------------------------------

  /**
   * Makes the range cached (NBD_CMD_CACHE): missing blocks are read below in contiguous runs,
   * blocks others are filling are waited for. A full cache or a write in progress leaves the rest
   * uncached: this is a hint.
   */
  public void fill(Export below, long offset, long length) throws IOException {
    fill(below, offset, length, null);
  }

  /**
   * A fill for a read into {@code dst} (the bytes at {@code offset}, or null): runs that lie
   * inside the read (all of a block-aligned read's) are read below straight into it, so that a
   * large read does not hold a fill buffer of its size beside its own: those are outside the
   * server's memory budget, and 16 clients' 32 MiB reads took the soak's RSS past its bound. The
   * read then copies the blocks back from their slots.
   */
  private void fill(Export below, long offset, long length, ByteBuffer dst) throws IOException {
    if (length <= 0) {
      return;
    }
    List<CompletableFuture<Void>> others = new ArrayList<>();
    List<Run> runs = new ArrayList<>();
    Target target = dst == null ? null : new Target(dst, offset);
    lock.lock();
    try {
      if (!mutating) {
        plan(offset >>> shift, (offset + length - 1) >>> shift, runs, others);
      }
    } finally {
      lock.unlock();
    }
    IOException failure = null;
    for (Run run : runs) {
      try {
        fetch(below, run, target);
      } catch (IOException e) {
        if (failure == null) {
          failure = e;
        }
      }
    }
    awaitAll(others);
    if (failure != null) {
      throw failure;
    }
  }

  /** Claims the missing blocks of [first, last] as FILLING runs; called with the lock held. */
  private void plan(long first, long last, List<Run> runs, List<CompletableFuture<Void>> others) {
    Run run = null;
    for (long i = first; i <= last; i++) {
      Block b = table.get(i);
      if (b != null) {
        if (b.state == State.FILLING) {
          others.add(b.filled);
        }
        run = null;
        continue;
      }
      if (run != null && (long) (run.blocks.size() + 1) * blockSize > MAX_RUN) {
        run = null;
      }
      Run joined = run != null ? run : new Run();
      Block claimed = table.claim(i, State.FILLING, joined.done);
      if (claimed == null) {
        return;
      }
      if (run == null) {
        run = joined;
        runs.add(run);
      }
      run.blocks.add(claimed);
    }
  }

  /** A read's destination: its buffer (from its position) holds the bytes at {@code offset}. */
  private record Target(ByteBuffer dst, long offset) {
    /** The part of the read for [start, end), or null when the read does not cover all of it. */
    ByteBuffer window(long start, long end) {
      if (start < offset || end > offset + dst.remaining()) {
        return null;
      }
      return dst.slice(dst.position() + (int) (start - offset), (int) (end - start));
    }
  }

  /** Reads a run below (into {@code target} when it covers the run), stores it into its slots and publishes it. */
  private void fetch(Export below, Run run, Target target) throws IOException {
    boolean stored = false;
    try {
      load(below, run.blocks, target);
      stored = true;
    } finally {
      finish(run, stored);
    }
  }

  /** Reads consecutive blocks below into their slots, as one read. */
  private void load(Export below, List<Block> consecutive, Target target) throws IOException {
    long start = consecutive.get(0).index << shift;
    long end = Math.min(size, (consecutive.get(consecutive.size() - 1).index + 1) << shift);
    int length = (int) (end - start);
    ByteBuffer window = target == null ? null : target.window(start, end);
    ByteBuffer buffer = window != null ? window : buffers.take(length);
    try {
      readBelow(below, buffer, start);
      for (int k = 0; k < consecutive.size(); k++) {
        int from = k << shift;
        store.write(consecutive.get(k).slot, 0, buffer.slice(from, Math.min(length - from, blockSize)));
      }
    } finally {
      if (window == null) {
        buffers.give(buffer);
      }
    }
    stats.filledBytes.add(length);
  }

  private void finish(Run run, boolean stored) {
    lock.lock();
    try {
      for (Block b : run.blocks) {
        if (stored) {
          b.state = State.CLEAN;
          b.filled = null;
        } else {
          table.drop(b);
        }
      }
    } finally {
      lock.unlock();
    }
    run.done.complete(null);
  }

  // ---- writes ------------------------------------------------------------------------------

  public void write(Export below, ByteBuffer src, long offset, int flags) throws IOException {
    writeLock.lock();
    beginMutation();
    try {
      awaitFills(offset, src.remaining());
      if (settings.mode() == CacheMode.WRITETHROUGH) {
        Emulation.withFua(below, flags, fua -> below.pwrite(src.duplicate(), offset, fua));
        updateCached(offset, src.remaining(), src);
      } else {
        writeIntoCache(below, src.duplicate(), offset);
        if (Flags.has(flags, Flags.FUA)) {
          writeBack(below, dirtyIn(offset, src.remaining()));
          if (below.canFlush()) {
            below.flush();
          }
        }
      }
      src.position(src.limit());
    } finally {
      endMutation();
      writeLock.unlock();
    }
  }

  private void writeIntoCache(Export below, ByteBuffer src, long offset) throws IOException {
    long end = offset + src.remaining();
    for (long i = offset >>> shift; i <= (end - 1) >>> shift; i++) {
      long blockStart = i << shift;
      long from = Math.max(offset, blockStart);
      long to = Math.min(end, blockStart + blockSize);
      ByteBuffer piece = src.slice((int) (from - offset), (int) (to - from));
      boolean whole = from == blockStart && to == Math.min(size, blockStart + blockSize);
      Block b = claimForWrite(below, i, !whole);
      if (b == null) {
        // Nothing evictable: this piece goes straight below, and no cached copy can be stale.
        below.pwrite(piece, from, 0);
        continue;
      }
      boolean stored = false;
      try {
        store.write(b.slot, (int) (from - blockStart), piece);
        stored = true;
      } finally {
        endWrite(b, stored ? State.DIRTY : afterFailedWrite(b));
      }
    }
  }

  /**
   * Block i, pinned and held for writing (see {@link #beginWrite}), read from below first if it
   * was missing and only partly overwritten; null if no slot can be had. The caller ends with
   * {@link #endWrite}.
   */
  private Block claimForWrite(Export below, long i, boolean readOld) throws IOException {
    for (boolean madeRoom = false; ; madeRoom = true) {
      Block claimed = null;
      lock.lock();
      try {
        Block b = table.get(i);
        if (b != null) {
          b.pins++;
          table.touch(b);
          beginWrite(b);
          return b;
        }
        CompletableFuture<Void> writing = new CompletableFuture<>();
        claimed = table.claim(i, State.FILLING, writing);
        if (claimed != null) {
          claimed.writing = writing;
          claimed.pins = 1;
        } else if (madeRoom) {
          return null;
        }
      } finally {
        lock.unlock();
      }
      if (claimed == null) {
        writeBack(below, oldestDirty());
        continue;
      }
      if (readOld) {
        try {
          load(below, List.of(claimed), null);
        } catch (IOException | RuntimeException e) {
          endWrite(claimed, null);
          throw e;
        }
      }
      return claimed;
    }
  }

  /**
   * Takes a block its caller has pinned for writing: readers arriving from now on wait, and the
   * ones already copying from the slot finish first. Their copies are short and never wait for
   * a writer, so this wait is too. Lock held.
   */
  private void beginWrite(Block b) {
    b.writing = new CompletableFuture<>();
    while (b.pins > 1) {
      drained.awaitUninterruptibly();
    }
  }

  /**
   * What a block becomes when its slot could not be written: dirty data stays (the failed range
   * is the client's to rewrite); anything else is dropped, since the layer below holds it whole.
   */
  private static State afterFailedWrite(Block b) {
    return b.state == State.DIRTY ? State.DIRTY : null;
  }

  /** Publishes a block in the given state, or drops it if null, and lets waiting readers in. */
  private void endWrite(Block b, State state) {
    CompletableFuture<Void> writing;
    lock.lock();
    try {
      if (state == null) {
        table.drop(b);
      } else {
        b.state = state;
        b.filled = null;
      }
      writing = b.writing;
      b.writing = null;
      unpin(b);
    } finally {
      lock.unlock();
    }
    writing.complete(null);
  }

  /** Copies new data into blocks that are cached (write-through: the data is already below). */
  private void updateCached(long offset, long length, ByteBuffer data) throws IOException {
    for (Block b : pinPresent(offset, length)) {
      lock.lock();
      try {
        beginWrite(b);
      } finally {
        lock.unlock();
      }
      boolean stored = false;
      try {
        long blockStart = b.index << shift;
        long from = Math.max(offset, blockStart);
        long to = Math.min(offset + length, blockStart + blockSize);
        ByteBuffer piece =
            data == null
                ? ByteBuffer.allocate((int) (to - from))
                : data.slice(data.position() + (int) (from - offset), (int) (to - from));
        store.write(b.slot, (int) (from - blockStart), piece);
        stored = true;
      } finally {
        endWrite(b, stored ? b.state : afterFailedWrite(b));
      }
    }
  }

  public void zero(Export below, long offset, long length, int flags) throws IOException {
    writeLock.lock();
    beginMutation();
    try {
      awaitFills(offset, length);
      Emulation.withFua(below, flags, fua -> below.zero(offset, length, fua));
      dropCovered(offset, length);
      updateCached(offset, length, null);
    } finally {
      endMutation();
      writeLock.unlock();
    }
  }

  public void trim(Export below, long offset, long length, int flags) throws IOException {
    writeLock.lock();
    beginMutation();
    try {
      awaitFills(offset, length);
      Emulation.withFua(below, flags, fua -> below.trim(offset, length, fua));
      // Partly trimmed blocks keep their data: a trimmed range may read back as anything.
      dropCovered(offset, length);
    } finally {
      endMutation();
      writeLock.unlock();
    }
  }

  /** Writes dirty blocks below and flushes it (writeback), or only flushes (writethrough). */
  public void flush(Export below) throws IOException {
    switch (settings.mode()) {
      case UNSAFE -> {}
      case WRITETHROUGH -> below.flush();
      case WRITEBACK -> {
        writeLock.lock();
        try {
          writeBack(below, dirtyIn(0, size));
          if (below.canFlush()) {
            below.flush();
          }
        } finally {
          writeLock.unlock();
        }
      }
    }
  }

  /**
   * Writes back what is dirty, then flushes below, when a connection closes: every server stop
   * closes its connections first, so acknowledged writes reach the plugin (nbdkit's cache loses
   * them). Unsafe mode keeps its promise of never writing back; a cache with nothing dirty costs
   * no flush below.
   */
  public void writeBackOnClose(Export below) throws IOException {
    if (settings.mode() != CacheMode.WRITEBACK) {
      return;
    }
    writeLock.lock();
    try {
      List<Block> dirty = dirtyIn(0, size);
      if (dirty.isEmpty()) {
        return;
      }
      log.debug("cache: writing back {} dirty blocks as a connection closes", dirty.size());
      writeBack(below, dirty);
      if (below.canFlush()) {
        below.flush();
      }
    } finally {
      writeLock.unlock();
    }
  }

  /** Writes pinned dirty blocks below in contiguous runs, marks them clean and unpins them. */
  private void writeBack(Export below, List<Block> dirty) throws IOException {
    dirty.sort(Comparator.comparingLong(b -> b.index));
    try {
      int i = 0;
      while (i < dirty.size()) {
        int j = i + 1;
        while (j < dirty.size() && dirty.get(j).index == dirty.get(j - 1).index + 1 && (long) (j - i + 1) * blockSize <= MAX_RUN) {
          j++;
        }
        long start = dirty.get(i).index << shift;
        int length = (int) (Math.min(size, (dirty.get(j - 1).index + 1) << shift) - start);
        ByteBuffer buffer = buffers.take(length);
        try {
          for (int k = i; k < j; k++) {
            int from = (k - i) << shift;
            store.read(dirty.get(k).slot, 0, buffer.slice(from, Math.min(length - from, blockSize)));
          }
          below.pwrite(buffer, start, 0);
        } finally {
          buffers.give(buffer);
        }
        lock.lock();
        try {
          for (int k = i; k < j; k++) {
            dirty.get(k).state = State.CLEAN;
          }
        } finally {
          lock.unlock();
        }
        stats.writebacks.add(j - i);
        i = j;
      }
    } finally {
      lock.lock();
      try {
        dirty.forEach(this::unpin);
      } finally {
        lock.unlock();
      }
    }
  }

  /** The dirty blocks in a range, pinned. */
  private List<Block> dirtyIn(long offset, long length) {
    List<Block> dirty = new ArrayList<>();
    lock.lock();
    try {
      for (Block b : blocksIn(offset, length)) {
        if (b.state == State.DIRTY) {
          b.pins++;
          dirty.add(b);
        }
      }
    } finally {
      lock.unlock();
    }
    return dirty;
  }

  /** Enough of the least recently used dirty blocks, pinned, to bring usage to the low threshold. */
  private List<Block> oldestDirty() {
    lock.lock();
    try {
      return table.pinOldestDirty();
    } finally {
      lock.unlock();
    }
  }

  private List<Block> pinPresent(long offset, long length) {
    lock.lock();
    try {
      List<Block> present = blocksIn(offset, length);
      present.forEach(b -> b.pins++);
      return present;
    } finally {
      lock.unlock();
    }
  }

  /** Forgets blocks wholly inside the range; called under the write lock, after the layer below changed. */
  private void dropCovered(long offset, long length) {
    lock.lock();
    try {
      for (Block b : blocksIn(offset, length)) {
        long blockStart = b.index << shift;
        if (blockStart >= offset && Math.min(size, blockStart + blockSize) <= offset + length) {
          table.drop(b);
        }
      }
    } finally {
      lock.unlock();
    }
  }

  private void awaitFills(long offset, long length) throws IOException {
    while (true) {
      List<CompletableFuture<Void>> inFlight = new ArrayList<>();
      lock.lock();
      try {
        for (Block b : blocksIn(offset, length)) {
          if (b.state == State.FILLING) {
            inFlight.add(b.filled);
          }
        }
      } finally {
        lock.unlock();
      }
      if (inFlight.isEmpty()) {
        return;
      }
      awaitAll(inFlight);
    }
  }

  /** Cached and filling blocks in a range; lock held. */
  private List<Block> blocksIn(long offset, long length) {
    if (length <= 0) {
      return new ArrayList<>();
    }
    return table.blocksIn(offset >>> shift, (offset + length - 1) >>> shift);
  }

  private void beginMutation() {
    lock.lock();
    try {
      mutating = true;
    } finally {
      lock.unlock();
    }
  }

  private void endMutation() {
    lock.lock();
    try {
      mutating = false;
    } finally {
      lock.unlock();
    }
  }

  // ---- pins --------------------------------------------------------------------------------

  /** Takes a pin off, and lets a writer waiting for the block's readers go on. Lock held. */
  private void unpin(Block b) {
    if (table.unpin(b)) {
      drained.signalAll();
    }
  }

  private void unpinAll(Block[] found, boolean served) {
    lock.lock();
    try {
      for (int i = 0; i < found.length; i++) {
        if (found[i] != null) {
          if (served && !found[i].dropped) {
            table.touchByRead(found[i]);
          }
          unpin(found[i]);
          found[i] = null;
        }
      }
    } finally {
      lock.unlock();
    }
  }

  private static void awaitAll(List<CompletableFuture<Void>> futures) throws IOException {
    for (CompletableFuture<Void> future : futures) {
      try {
        future.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while waiting for a cache fill");
      } catch (ExecutionException e) {
        // The filler failed; whoever waited reads for itself.
      }
    }
  }

  @Override
  public void close() throws IOException {
    buffers.close();
    store.close();
  }
}
