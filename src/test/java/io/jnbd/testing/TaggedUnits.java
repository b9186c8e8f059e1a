package io.jnbd.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.Function;

/**
 * Hammer tests for layers that keep blocks of their own (a cache, a copy-on-write overlay): the
 * disk is made of 4 KiB units, each filled with one 8-byte tag, its number and a version. One
 * writer rewrites units while readers read across them, so a read that returns another unit's
 * bytes, a mix of two versions, or a version older than a write that had finished before the
 * read began, is caught, with the seed that replays it ({@code -Djnbd.seed}).
 */
public final class TaggedUnits {
  public static final int UNIT = 4096;

  private TaggedUnits() {}

  /** The layer under test, as the hammer writes and reads it. */
  public interface Store {
    void write(ByteBuffer data, long offset) throws Exception;

    void read(ByteBuffer into, long offset) throws Exception;
  }

  /** Work that runs beside the writer until it is done (fills, flushes, cache requests). */
  public interface Beside {
    void step(Random random) throws Exception;
  }

  public static long tag(int unit, long version) {
    return (long) unit << 32 | version;
  }

  /** Fills the unit at {@code unitInArray} of {@code bytes} with {@code tag}. */
  public static void fillUnit(byte[] bytes, int unitInArray, long tag) {
    ByteBuffer buffer = ByteBuffer.wrap(bytes);
    for (int w = 0; w < UNIT; w += 8) {
      buffer.putLong(unitInArray * UNIT + w, tag);
    }
  }

  /** A disk of {@code units} units, each at version 0. */
  public static ArrayDisk disk(int units) {
    ArrayDisk disk = new ArrayDisk(units * UNIT);
    for (int u = 0; u < units; u++) {
      fillUnit(disk.data, u, tag(u, 0));
    }
    return disk;
  }

  /**
   * Runs {@code writes} writes of the units that {@code nextWrite} picks ({first unit, count}),
   * with {@code readers} readers of runs of up to {@code maxReadUnits} units and {@code beside}
   * running meanwhile; returns each unit's last written version.
   */
  public static AtomicLongArray hammer(Store store, int units, int writes, Function<Random, int[]> nextWrite,
      int readers, int maxReadUnits, Beside beside) throws Exception {
    long seed = Long.getLong("jnbd.seed", System.nanoTime());
    AtomicLongArray started = new AtomicLongArray(units);
    AtomicLongArray committed = new AtomicLongArray(units);
    ExecutorService pool = Executors.newFixedThreadPool(readers + 2);
    try {
      CountDownLatch writing = new CountDownLatch(1);
      List<Future<?>> futures = new ArrayList<>();
      futures.add(pool.submit(() -> {
        try {
          Random random = new Random(seed);
          for (long version = 1; version <= writes; version++) {
            int[] write = nextWrite.apply(random);
            byte[] bytes = new byte[write[1] * UNIT];
            for (int u = 0; u < write[1]; u++) {
              started.set(write[0] + u, version);
              fillUnit(bytes, u, tag(write[0] + u, version));
            }
            store.write(ByteBuffer.wrap(bytes), (long) write[0] * UNIT);
            for (int u = 0; u < write[1]; u++) {
              committed.set(write[0] + u, version);
            }
          }
          return null;
        } finally {
          writing.countDown();
        }
      }));
      for (int r = 0; r < readers; r++) {
        Random random = new Random(seed + 1 + r);
        futures.add(pool.submit(() -> {
          while (writing.getCount() > 0) {
            int firstUnit = random.nextInt(units);
            int count = 1 + random.nextInt(Math.min(units - firstUnit, maxReadUnits));
            long[] oldest = new long[count];
            for (int u = 0; u < count; u++) {
              oldest[u] = committed.get(firstUnit + u);
            }
            ByteBuffer buffer = ByteBuffer.allocate(count * UNIT);
            store.read(buffer, (long) firstUnit * UNIT);
            for (int u = 0; u < count; u++) {
              assertWhole(buffer, u, firstUnit + u, oldest[u], started.get(firstUnit + u), seed);
            }
          }
          return null;
        }));
      }
      Random besideRandom = new Random(seed - 1);
      futures.add(pool.submit(() -> {
        while (writing.getCount() > 0) {
          beside.step(besideRandom);
        }
        return null;
      }));
      for (Future<?> future : futures) {
        future.get(60, TimeUnit.SECONDS);
      }
      return committed;
    } finally {
      pool.shutdownNow();
    }
  }

  private static void assertWhole(ByteBuffer buffer, int u, int unit, long oldest, long newest, long seed) {
    long word = buffer.getLong(u * UNIT);
    String where = "unit " + unit + " (seed " + seed + ", -Djnbd.seed to repeat)";
    for (int w = 8; w < UNIT; w += 8) {
      assertThat(buffer.getLong(u * UNIT + w)).as("a word of %s: one version throughout", where).isEqualTo(word);
    }
    assertThat(word >>> 32).as("the unit whose bytes %s holds", where).isEqualTo(unit);
    assertThat(word & 0xffffffffL).as("version of %s", where).isBetween(oldest, newest);
  }

  /** Reads everything through the store: each unit must hold its last written version. */
  public static void assertLastVersions(Store store, int units, AtomicLongArray committed) throws Exception {
    ByteBuffer all = ByteBuffer.allocate(units * UNIT);
    store.read(all, 0);
    for (int u = 0; u < units; u++) {
      assertThat(all.getLong(u * UNIT)).as("unit %d after the last write", u).isEqualTo(tag(u, committed.get(u)));
    }
  }
}
