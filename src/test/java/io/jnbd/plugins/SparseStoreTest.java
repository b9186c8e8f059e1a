package io.jnbd.plugins;

import static io.jnbd.testing.Exports.bytesOf;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Extents;
import io.jnbd.api.ReadData;
import io.jnbd.testing.PropertyCheck;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.Test;

class SparseStoreTest {
  private static final int SPACE = 2048;
  private static final int PAGE = 64;

  /**
   * One operation on the store and on a model of it: a byte array for the data, and which pages
   * the store should keep. A page is allocated by a write of non-zero bytes into it, and freed by
   * a zero that covers it whole or leaves it all zero; a write of zeroes over a kept page keeps
   * it (the store does not look at a page's other bytes on a write).
   */
  record Op(boolean write, int offset, int length, byte fill, long seed) {
    void apply(SparseStore store, byte[] model, boolean[] kept) throws Exception {
      if (write) {
        byte[] bytes = new byte[length];
        // A mix of zero runs and data, so writes of zeroes to absent pages are exercised too.
        Random random = new Random(seed);
        for (int i = 0; i < length; i++) {
          bytes[i] = random.nextInt(3) == 0 ? 0 : fill;
        }
        store.write(ByteBuffer.wrap(bytes), offset);
        System.arraycopy(bytes, 0, model, offset, length);
        for (int page = offset / PAGE; page * PAGE < offset + length; page++) {
          int from = Math.max(offset, page * PAGE);
          int to = Math.min(offset + length, (page + 1) * PAGE);
          kept[page] |= !isZero(bytes, from - offset, to - offset);
        }
      } else {
        store.zero(offset, length);
        Arrays.fill(model, offset, offset + length, (byte) 0);
        for (int page = offset / PAGE; page * PAGE < offset + length; page++) {
          kept[page] &= !isZero(model, page * PAGE, (page + 1) * PAGE);
        }
      }
    }
  }

  static Op randomOp(Random random) {
    int offset = random.nextInt(SPACE);
    int length = 1 + random.nextInt(300);
    return new Op(random.nextBoolean(), offset, Math.min(length, SPACE - offset), (byte) random.nextInt(256), random.nextLong());
  }

  @Test
  void readsMatchAByteArrayModel() {
    PropertyCheck.forAll(300, random -> PropertyCheck.listOf(random, 0, 40, SparseStoreTest::randomOp),
        SparseStoreTest::runAgainstModel);
  }

  private static void runAgainstModel(List<Op> ops) throws Exception {
    SparseStore store = new SparseStore(PAGE);
    byte[] model = new byte[SPACE];
    boolean[] kept = new boolean[SPACE / PAGE];
    for (Op op : ops) {
      op.apply(store, model, kept);
    }
    byte[] whole = new byte[SPACE];
    store.read(ByteBuffer.wrap(whole), 0);
    assertThat(whole).isEqualTo(model);
    // Unaligned reads into a direct buffer see the same bytes.
    ByteBuffer direct = ByteBuffer.allocateDirect(333);
    store.read(direct, 77);
    assertThat(bytes(direct.flip())).isEqualTo(Arrays.copyOfRange(model, 77, 77 + 333));
    // Exactly the pages the model keeps are allocated, and reported as data; the rest are holes.
    Extents map = new Extents(0, SPACE);
    store.extents(0, SPACE, map);
    int page = 0;
    int keptPages = 0;
    for (int i = 0; i < map.count(); i++) {
      for (long end = page + map.length(i) / PAGE; page < end; page++) {
        assertThat(map.type(i)).as("page %d", page).isEqualTo(kept[page] ? Extents.DATA : Extents.HOLE_ZERO);
        keptPages += kept[page] ? 1 : 0;
      }
    }
    assertThat(page).isEqualTo(SPACE / PAGE);
    assertThat(store.allocatedBytes()).isEqualTo((long) keptPages * PAGE);
  }

  @Test
  void aTerabyteAddressSpaceCostsOnlyTheWrittenPages() throws Exception {
    SparseStore store = new SparseStore();
    long far = (1L << 40) - 3;
    store.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), far);
    store.write(ByteBuffer.wrap(new byte[] {9}), 12345);
    assertThat(store.allocatedBytes()).isEqualTo(2L * SparseStore.DEFAULT_PAGE_SIZE);
    ByteBuffer back = ByteBuffer.allocate(5);
    store.read(back, far - 1);
    assertThat(back.array()).containsExactly(0, 1, 2, 3, 0);
    store.zero(0, 1L << 41);
    assertThat(store.allocatedBytes()).isZero();
  }

  @Test
  void writtenDataIsNotOnTheJavaHeap() throws Exception {
    var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    SparseStore store = new SparseStore();
    ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
    while (chunk.hasRemaining()) {
      chunk.put((byte) 0x5a);
    }
    long before = threads.getCurrentThreadAllocatedBytes();
    for (int i = 0; i < 64; i++) {
      store.write(chunk.clear(), (long) i << 20);
    }
    long heapAllocated = threads.getCurrentThreadAllocatedBytes() - before;
    assertThat(store.allocatedBytes()).isEqualTo(64L << 20);
    // The index and per-request objects only: a page on the heap would cost its whole size.
    assertThat(heapAllocated).isLessThan(4L << 20);
    ByteBuffer back = ByteBuffer.allocate(3);
    store.read(back, (63L << 20) + 5);
    assertThat(back.array()).containsExactly(0x5a, 0x5a, 0x5a);
    store.zero(0, 64L << 20);
    assertThat(store.allocatedBytes()).isZero();
  }

  @Test
  void zeroWritesToAbsentPagesAllocateNothingAndReadsNeverAllocate() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    store.write(ByteBuffer.allocate(PAGE * 4), 10);
    store.read(ByteBuffer.allocate(PAGE * 4), 0);
    assertThat(store.allocatedBytes()).isZero();
  }

  @Test
  void partialZeroFreesAPageOnlyWhenItBecomesAllZero() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    store.write(ByteBuffer.wrap(new byte[] {1, 1}), 10);
    store.zero(10, 1);
    assertThat(store.allocatedBytes()).isEqualTo(PAGE);
    store.zero(11, 1);
    assertThat(store.allocatedBytes()).isZero();
  }

  @Test
  void extentsAreReportedPerPage() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    store.write(ByteBuffer.wrap(new byte[] {7}), PAGE * 2 + 5);
    Extents map = new Extents(10, PAGE * 4);
    store.extents(10, PAGE * 4 - 10, map);
    assertThat(map.count()).isEqualTo(3);
    assertThat(List.of(map.type(0), map.type(1), map.type(2)))
        .containsExactly(Extents.HOLE_ZERO, Extents.DATA, Extents.HOLE_ZERO);
    assertThat(List.of(map.length(0), map.length(1), map.length(2)))
        .containsExactly((long) PAGE * 2 - 10, (long) PAGE, (long) PAGE);
  }

  @Test
  void concurrentWritersOfDisjointRangesDoNotLoseData() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    int threads = 8;
    int chunk = 40; // not page aligned: neighbours share pages
    List<Future<?>> workers = new ArrayList<>();
    try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
      for (int t = 0; t < threads; t++) {
        int id = t;
        workers.add(pool.submit(() -> {
          for (int round = 0; round < 200; round++) {
            for (int slot = id; slot < 64; slot += threads) {
              byte[] bytes = new byte[chunk];
              Arrays.fill(bytes, (byte) (slot + 1));
              if (ThreadLocalRandom.current().nextBoolean()) {
                store.zero((long) slot * chunk, chunk);
              }
              store.write(ByteBuffer.wrap(bytes), (long) slot * chunk);
            }
          }
          return null;
        }));
      }
      for (Future<?> worker : workers) {
        worker.get(); // a worker's exception fails the test here
      }
    }
    byte[] all = new byte[64 * chunk];
    store.read(ByteBuffer.wrap(all), 0);
    for (int slot = 0; slot < 64; slot++) {
      for (int i = 0; i < chunk; i++) {
        assertThat(all[slot * chunk + i]).as("slot %d", slot).isEqualTo((byte) (slot + 1));
      }
    }
  }

  static byte[] bytes(ByteBuffer buffer) {
    byte[] out = new byte[buffer.remaining()];
    buffer.get(out);
    return out;
  }

  private static boolean isZero(byte[] bytes, int from, int to) {
    for (int i = from; i < to; i++) {
      if (bytes[i] != 0) {
        return false;
      }
    }
    return true;
  }

  @Test
  void aLentPageOutlivesTheZeroThatTakesItOutOfTheStore() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    byte[] ones = new byte[PAGE];
    Arrays.fill(ones, (byte) 0x11);
    store.write(ByteBuffer.wrap(ones), 0);
    ReadData lent = store.readData(0, PAGE);
    assertThat(lent).isInstanceOf(ReadData.Views.class);
    store.zero(0, PAGE);
    assertThat(store.allocatedBytes()).isZero();
    // Were the page freed, the C library would now have written its own pointers into it, and
    // very likely handed the memory to this new page.
    byte[] twos = new byte[PAGE];
    Arrays.fill(twos, (byte) 0x22);
    store.write(ByteBuffer.wrap(twos), PAGE);
    assertThat(bytesOf(lent)).isEqualTo(ones);
    lent.close();
    assertThat(bytesOf(store.readData(0, PAGE))).isEqualTo(new byte[PAGE]);
    assertThat(store.readData(0, PAGE)).isEqualTo(new ReadData.Zeroes(PAGE));
  }

  @Test
  void readsHandOverViewsOfPagesAndZeroesForAbsentOnes() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    byte[] model = new byte[SPACE];
    byte[] bytes = new byte[3 * PAGE];
    new Random(3).nextBytes(bytes);
    store.write(ByteBuffer.wrap(bytes), 5 * PAGE + 7);
    System.arraycopy(bytes, 0, model, 5 * PAGE + 7, bytes.length);
    for (int offset : new int[] {0, 1, 4 * PAGE + 3, 5 * PAGE + 7, 6 * PAGE, 8 * PAGE + 1}) {
      for (int length : new int[] {1, PAGE - 1, PAGE, 2 * PAGE + 5, 6 * PAGE}) {
        try (ReadData data = store.readData(offset, length)) {
          assertThat(data.length()).isEqualTo(length);
          assertThat(bytesOf(data)).as("%d@%d", length, offset).isEqualTo(Arrays.copyOfRange(model, offset, offset + length));
          boolean anyData = false;
          for (int i = offset; i < offset + length; i++) {
            anyData |= model[i] != 0;
          }
          if (anyData) {
            assertThat(data).isInstanceOf(ReadData.Views.class);
            for (ByteBuffer view : ((ReadData.Views) data).buffers()) {
              assertThat(view.isReadOnly()).isTrue();
            }
          }
        }
      }
    }
  }

  /**
   * Reads that hold their views for a while, racing writes, zeroes and trims of the same pages:
   * every byte a view shows must be 0 or a value written to that page, never memory freed or
   * reused for another page (the C library's free pointers, or another page's value). Each
   * page's values carry the page's number in bits 3-5, so that a page's memory reused for
   * another is seen.
   */
  @Test
  void lentViewsNeverShowFreedOrReusedMemoryWhileZeroesRace() throws Exception {
    SparseStore store = new SparseStore(PAGE);
    int pages = SPACE / PAGE;
    int rounds = 20_000;
    ExecutorService threads = Executors.newFixedThreadPool(4);
    try {
      List<Future<?>> work = new ArrayList<>();
      for (int t = 0; t < 2; t++) {
        long seed = t;
        work.add(threads.submit(() -> {
          Random random = new Random(seed);
          for (int i = 0; i < rounds; i++) {
            int page = random.nextInt(pages);
            if (random.nextBoolean()) {
              byte[] fill = new byte[PAGE];
              Arrays.fill(fill, valueFor(page, random.nextInt(8)));
              store.write(ByteBuffer.wrap(fill), (long) page * PAGE);
            } else if (random.nextBoolean()) {
              store.zero((long) page * PAGE, PAGE);
            } else {
              // A part: the page is freed only if the rest was zero already.
              store.zero((long) page * PAGE + random.nextInt(PAGE / 2), PAGE / 2);
            }
          }
          return null;
        }));
      }
      for (int t = 0; t < 2; t++) {
        long seed = 100 + t;
        work.add(threads.submit(() -> {
          Random random = new Random(seed);
          List<ReadData> held = new ArrayList<>();
          List<Integer> offsets = new ArrayList<>();
          for (int i = 0; i < rounds; i++) {
            int offset = random.nextInt(SPACE - 4 * PAGE);
            held.add(store.readData(offset, 1 + random.nextInt(4 * PAGE)));
            offsets.add(offset);
            if (held.size() == 8) {
              for (int k = 0; k < held.size(); k++) {
                try (ReadData data = held.get(k)) {
                  byte[] bytes = bytesOf(data);
                  for (int b = 0; b < bytes.length; b++) {
                    int page = (offsets.get(k) + b) / PAGE;
                    if (bytes[b] != 0 && (bytes[b] & 0xf8) != (valueFor(page, 0) & 0xf8)) {
                      throw new AssertionError("byte " + (offsets.get(k) + b) + " of page " + page + " reads "
                          + Integer.toHexString(bytes[b] & 0xff));
                    }
                  }
                }
              }
              held.clear();
              offsets.clear();
            }
          }
          held.forEach(ReadData::close);
          return null;
        }));
      }
      for (Future<?> future : work) {
        future.get();
      }
    } finally {
      threads.shutdownNow();
    }
    // Every page still allocated is in the store, and zeroing all gives every one back.
    store.zero(0, SPACE);
    assertThat(store.allocatedBytes()).isZero();
  }

  /** A non-zero byte that names its page: 0x40 | (page mod 8) << 3 | generation. */
  private static byte valueFor(int page, int generation) {
    return (byte) (0x40 | (page % 8) << 3 | generation);
  }
}
