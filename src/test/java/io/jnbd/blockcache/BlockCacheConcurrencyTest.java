package io.jnbd.blockcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.CountingExport;
import io.jnbd.testing.TaggedUnits;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class BlockCacheConcurrencyTest {
  private static final int BLOCK = 64 * 1024;

  private static ArrayDisk randomDisk(int size, long seed) {
    ArrayDisk disk = new ArrayDisk(size);
    new Random(seed).nextBytes(disk.data);
    return disk;
  }

  private static void awaitParked(List<Thread> threads) throws InterruptedException {
    for (Thread t : threads) {
      while (t.isAlive() && t.getState() != Thread.State.WAITING) {
        Thread.sleep(1);
      }
    }
  }

  @Test
  void manyRequestsForOneRangeFillItOnce() throws Exception {
    ArrayDisk disk = randomDisk(4 << 20, 1);
    CountingExport below = new CountingExport(disk.open(true, ""));
    below.gate = new CountDownLatch(1);
    try (BlockCache cache = new BlockCache(CacheSettings.memoryReadCache(16 << 20), disk.data.length)) {
      List<Throwable> failures = new ArrayList<>();
      List<Thread> threads = new ArrayList<>();
      threads.add(Thread.ofPlatform().start(() -> run(failures, () -> cache.fill(below, 0, 1 << 20))));
      below.readStarted.await();
      for (int i = 0; i < 8; i++) {
        int n = i;
        threads.add(Thread.ofPlatform().start(() -> run(failures, () -> {
          if (n % 2 == 0) {
            cache.fill(below, 0, 1 << 20);
          } else {
            ByteBuffer buffer = ByteBuffer.allocate(100_000);
            long offset = n * 100_000L;
            cache.read(below, buffer, offset);
            assertThat(buffer.array()).isEqualTo(Arrays.copyOfRange(disk.data, (int) offset, (int) offset + 100_000));
          }
        })));
      }
      awaitParked(threads.subList(1, threads.size()));
      below.gate.countDown();
      for (Thread t : threads) {
        t.join();
      }
      assertThat(failures).isEmpty();
      assertThat(below.preads.get()).as("reads below").isEqualTo(1);
      assertThat(cache.stats().waits.sum()).isEqualTo(4);
    }
  }

  private interface Action {
    void run() throws Exception;
  }

  private static void run(List<Throwable> failures, Action action) {
    try {
      action.run();
    } catch (Throwable t) {
      synchronized (failures) {
        failures.add(t);
      }
    }
  }

  @Test
  void aLargeCacheRequestIsOneReadBelowAndLaterReadsHit() throws Exception {
    ArrayDisk disk = randomDisk(16 << 20, 2);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (BlockCache cache = new BlockCache(new CacheSettings(CacheMode.WRITEBACK, false, 0, 95, 80, BLOCK, false), disk.data.length)) {
      cache.fill(below, 1 << 20, 8 << 20);
      assertThat(below.preads.get()).isEqualTo(1);
      assertThat(below.readBytes.get()).isEqualTo(8 << 20);
      for (long offset = 1 << 20; offset < 9 << 20; offset += 256 * 1024) {
        ByteBuffer buffer = ByteBuffer.allocate(256 * 1024);
        cache.read(below, buffer, offset);
        assertThat(buffer.array()).isEqualTo(Arrays.copyOfRange(disk.data, (int) offset, (int) offset + buffer.capacity()));
      }
      assertThat(below.preads.get()).isEqualTo(1);
      assertThat(cache.stats().hits.sum()).isEqualTo(32);
    }
  }

  @ParameterizedTest
  @ValueSource(booleans = {true, false})
  void aReadSpanningManyMissingBlocksIsOneReadBelow(boolean onRead) throws Exception {
    ArrayDisk disk = randomDisk(16 << 20, 3);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (BlockCache cache = new BlockCache(new CacheSettings(CacheMode.WRITEBACK, onRead, 0, 95, 80, BLOCK, true), disk.data.length)) {
      // Blocks 3 and 4 are cached, so the read below is split around them: two runs, not 64 blocks.
      cache.fill(below, 3L * BLOCK, 2L * BLOCK);
      ByteBuffer buffer = ByteBuffer.allocate(4 << 20);
      cache.read(below, buffer, 1000);
      assertThat(buffer.array()).isEqualTo(Arrays.copyOfRange(disk.data, 1000, 1000 + (4 << 20)));
      assertThat(below.preads.get()).isEqualTo(3);
      cache.read(below, buffer.clear(), 1000);
      assertThat(below.preads.get()).isEqualTo(onRead ? 3 : 5);
    }
  }

  /**
   * Writers, readers and fillers hammer a small cache at once. Each worker owns an unaligned
   * region (so blocks are shared at the edges) and checks every read of it against what it
   * wrote; fillers request random ranges all the time, so fills race with every write.
   */
  @ParameterizedTest
  @EnumSource(CacheMode.class)
  void concurrentWritesReadsAndFillsNeverServeStaleData(CacheMode mode) throws Exception {
    int workers = 4;
    int region = 5 * BLOCK + 777;
    int size = workers * region;
    ArrayDisk disk = randomDisk(size, 4);
    byte[] initial = disk.data.clone();
    CacheSettings settings = new CacheSettings(mode, false, 6L * BLOCK, 95, 80, BLOCK, false);
    ExecutorService pool = Executors.newFixedThreadPool(workers + 2);
    try (BlockCache cache = new BlockCache(settings, size)) {
      Export below = disk.open(false, "");
      CountDownLatch done = new CountDownLatch(workers);
      List<Future<?>> futures = new ArrayList<>();
      for (int w = 0; w < workers; w++) {
        int base = w * region;
        futures.add(pool.submit(() -> {
          try {
            Random random = new Random(base);
            byte[] model = Arrays.copyOfRange(initial, base, base + region);
            for (int i = 0; i < 300; i++) {
              int offset = random.nextInt(region);
              int length = 1 + random.nextInt(Math.min(region - offset, 2 * BLOCK));
              switch (random.nextInt(4)) {
                case 0 -> {
                  byte[] bytes = new byte[length];
                  random.nextBytes(bytes);
                  cache.write(below, ByteBuffer.wrap(bytes), base + offset, 0);
                  System.arraycopy(bytes, 0, model, offset, length);
                }
                case 1 -> {
                  cache.zero(below, base + offset, length, 0);
                  Arrays.fill(model, offset, offset + length, (byte) 0);
                }
                default -> {
                  ByteBuffer buffer = ByteBuffer.allocate(length);
                  cache.read(below, buffer, base + offset);
                  assertThat(Arrays.mismatch(buffer.array(), Arrays.copyOfRange(model, offset, offset + length)))
                      .as("first wrong byte of worker %d's read %d+%d", base, offset, length)
                      .isEqualTo(-1);
                }
              }
            }
            return null;
          } finally {
            done.countDown();
          }
        }));
      }
      for (int f = 0; f < 2; f++) {
        long seed = f;
        futures.add(pool.submit(() -> {
          Random random = new Random(seed);
          while (done.getCount() > 0) {
            int offset = random.nextInt(size);
            cache.fill(below, offset, Math.min(size - offset, 1 + random.nextInt(3 * BLOCK)));
          }
          return null;
        }));
      }
      for (Future<?> future : futures) {
        future.get();
      }
      cache.checkInvariants();
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aBoundedCacheNeverHoldsMoreThanItsSize() throws Exception {
    ArrayDisk disk = randomDisk(8 << 20, 5);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (BlockCache cache = new BlockCache(CacheSettings.memoryReadCache(1 << 20), disk.data.length)) {
      for (long offset = 0; offset < disk.data.length; offset += 512 * 1024) {
        cache.fill(below, offset, 512 * 1024);
        assertThat(cache.usedSlots()).isLessThanOrEqualTo(16);
      }
      assertThat(cache.stats().evictions.sum()).isGreaterThan(0);
      // The most recent half megabyte is still there.
      long before = below.preads.get();
      ByteBuffer buffer = ByteBuffer.allocate(512 * 1024);
      cache.read(below, buffer, disk.data.length - buffer.capacity());
      assertThat(below.preads.get()).isEqualTo(before);
      assertThat(buffer.array()).isEqualTo(Arrays.copyOfRange(disk.data, disk.data.length - buffer.capacity(), disk.data.length));
    }
  }

  /**
   * One writer rewrites tagged 4 KiB units (whole blocks mostly, also runs of blocks and parts of
   * blocks) of a cache far smaller than the disk, so slots are reused all the time, while readers
   * read across them and a filler caches and flushes (see {@link TaggedUnits}).
   */
  @ParameterizedTest(name = "{0} memory={1} cache-on-read={2}")
  @MethodSource("modesAndStores")
  void aReadUnderConcurrentWritesGetsTheOldOrTheNewUnitNeverAnotherOne(CacheMode mode, boolean inMemory, boolean onRead) throws Exception {
    int blocks = 16;
    int unitsPerBlock = BLOCK / TaggedUnits.UNIT;
    int units = blocks * unitsPerBlock;
    ArrayDisk disk = TaggedUnits.disk(units);
    CacheSettings settings = new CacheSettings(mode, onRead, 4L * BLOCK, 95, 80, BLOCK, inMemory);
    try (BlockCache cache = new BlockCache(settings, disk.data.length)) {
      Export below = disk.open(false, "");
      TaggedUnits.Store store = new TaggedUnits.Store() {
        @Override
        public void write(ByteBuffer data, long offset) throws Exception {
          cache.write(below, data, offset, 0);
        }

        @Override
        public void read(ByteBuffer into, long offset) throws Exception {
          cache.read(below, into, offset);
        }
      };
      AtomicLongArray committed = TaggedUnits.hammer(store, units, 3000, random -> switch (random.nextInt(4)) {
        case 0 -> {
          int first = random.nextInt(units - 1);
          yield new int[] {first, 1 + random.nextInt(Math.min(units - first, 2 * unitsPerBlock))};
        }
        case 1 -> new int[] {random.nextInt(blocks - 1) * unitsPerBlock, 2 * unitsPerBlock};
        default -> new int[] {random.nextInt(blocks) * unitsPerBlock, unitsPerBlock};
      }, 4, 3 * unitsPerBlock, random -> {
        int offset = random.nextInt(disk.data.length);
        cache.fill(below, offset, Math.min(disk.data.length - offset, 1 + random.nextInt(3 * BLOCK)));
        if (random.nextInt(8) == 0) {
          cache.flush(below);
        }
      });
      TaggedUnits.assertLastVersions(store, units, committed);
      cache.checkInvariants();
    }
  }

  static Stream<Arguments> modesAndStores() {
    return Stream.of(CacheMode.values())
        .flatMap(mode -> Stream.of(true, false).flatMap(memory -> Stream.of(true, false).map(onRead -> Arguments.of(mode, memory, onRead))));
  }
}
