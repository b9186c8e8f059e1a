package io.jnbd.plugins;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Extents;
import io.jnbd.testing.PropertyCheck;
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
}
