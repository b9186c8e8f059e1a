package io.jnbd.filters.cow;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TaggedUnits;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class OverlayConcurrencyTest {
  /** The unit that writers tag and readers check; a block holds four, so unit writes are partial-block writes. */
  private static final int UNIT = TaggedUnits.UNIT;
  private static final int BLOCK = 4 * UNIT;
  private static final int UNITS_PER_BLOCK = BLOCK / UNIT;

  @TempDir Path temp;

  static Stream<Arguments> storesAndCopyOnRead() {
    return Stream.of(true, false).flatMap(memory -> Stream.of(true, false).map(copy -> Arguments.of(memory, copy)));
  }

  /**
   * One writer rewrites tagged units (single units, whole blocks, runs of blocks) while readers
   * read across them, copying into the overlay or not, and another thread copies blocks in as
   * cache requests would. Every unit a reader gets must be one that was written there, whole:
   * not another unit's bytes, not a mix of two versions, and not older than a write that had
   * finished before the read began.
   */
  @ParameterizedTest(name = "memory={0} cow-on-read={1}")
  @MethodSource("storesAndCopyOnRead")
  void aReadUnderConcurrentWritesGetsTheOldOrTheNewUnitNeverAnotherOne(boolean inMemory, boolean copyOnRead) throws Exception {
    int blocks = 16;
    int size = blocks * BLOCK;
    int units = size / UNIT;
    ArrayDisk disk = TaggedUnits.disk(units);
    try (Overlay overlay = new Overlay(size, BLOCK, inMemory, temp)) {
      Export below = disk.open(true, "");
      TaggedUnits.Store store = new TaggedUnits.Store() {
        @Override
        public void write(ByteBuffer data, long offset) throws Exception {
          overlay.write(below, data, offset);
        }

        @Override
        public void read(ByteBuffer into, long offset) throws Exception {
          overlay.read(below, into, offset, copyOnRead);
        }
      };
      AtomicLongArray committed = TaggedUnits.hammer(store, units, 3000, random -> switch (random.nextInt(3)) {
        case 0 -> {
          int first = random.nextInt(units - 1);
          yield new int[] {first, 1 + random.nextInt(Math.min(units - first, 2 * UNITS_PER_BLOCK))};
        }
        case 1 -> new int[] {random.nextInt(blocks - 1) * UNITS_PER_BLOCK, 2 * UNITS_PER_BLOCK};
        default -> new int[] {random.nextInt(units), 1};
      }, 3, 3 * UNITS_PER_BLOCK, random -> {
        int offset = random.nextInt(size);
        overlay.copyIn(below, offset, Math.min(size - offset, 1 + random.nextInt(3 * BLOCK)));
      });
      assertEveryUnitHasItsLastVersion(overlay, below, size, committed);
    }
  }

  /**
   * Writers of different units of the same blocks, walking the blocks in step so that they meet
   * on blocks not yet in the overlay, with a reader copying blocks in meanwhile: a
   * read-modify-write of an absent block, or a copy from below, must never put back bytes that
   * another writer had just replaced.
   */
  @ParameterizedTest(name = "memory={0}")
  @ValueSource(booleans = {true, false})
  void partialWritesToOneBlockNeverLoseEachOther(boolean inMemory) throws Exception {
    long seed = Long.getLong("jnbd.seed", System.nanoTime());
    int blocks = 512;
    int size = blocks * BLOCK;
    int units = size / UNIT;
    ArrayDisk disk = TaggedUnits.disk(units);
    AtomicLongArray committed = new AtomicLongArray(units);
    ExecutorService pool = Executors.newFixedThreadPool(UNITS_PER_BLOCK + 1);
    try (Overlay overlay = new Overlay(size, BLOCK, inMemory, temp)) {
      Export below = disk.open(true, "");
      CountDownLatch writing = new CountDownLatch(UNITS_PER_BLOCK);
      List<Future<?>> futures = new ArrayList<>();
      for (int w = 0; w < UNITS_PER_BLOCK; w++) {
        int lane = w;
        futures.add(pool.submit(() -> {
          try {
            for (int block = 0; block < blocks; block++) {
              int unit = block * UNITS_PER_BLOCK + lane;
              byte[] bytes = new byte[UNIT];
              TaggedUnits.fillUnit(bytes, 0, TaggedUnits.tag(unit, 1));
              overlay.write(below, ByteBuffer.wrap(bytes), (long) unit * UNIT);
              committed.set(unit, 1);
            }
            return null;
          } finally {
            writing.countDown();
          }
        }));
      }
      futures.add(pool.submit(() -> {
        Random random = new Random(seed);
        while (writing.getCount() > 0) {
          overlay.read(below, ByteBuffer.allocate(UNIT), (long) random.nextInt(units) * UNIT, true);
        }
        return null;
      }));
      for (Future<?> future : futures) {
        future.get(60, TimeUnit.SECONDS);
      }
      assertEveryUnitHasItsLastVersion(overlay, below, size, committed);
    } finally {
      pool.shutdownNow();
    }
  }

  private static void assertEveryUnitHasItsLastVersion(Overlay overlay, Export below, int size, AtomicLongArray committed) throws Exception {
    ByteBuffer all = ByteBuffer.allocate(size);
    overlay.read(below, all, 0, false);
    for (int u = 0; u < size / UNIT; u++) {
      assertThat(all.getLong(u * UNIT)).as("unit %d after the last write", u).isEqualTo(TaggedUnits.tag(u, committed.get(u)));
    }
  }
}
