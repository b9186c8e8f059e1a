package io.jnbd.blockcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.PropertyCheck;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import java.util.stream.Stream;

/**
 * Model-based test: random sequences of reads, writes (with and without FUA), zeroes, trims,
 * cache requests and flushes go through a {@link BlockCache} over an {@link ArrayDisk}, and every
 * read must match a plain byte array that saw the same operations; the disk below must match it
 * whenever the mode promises (always for writethrough, after flush for writeback). The disk is
 * not a whole number of blocks, and the bounded variant has three slots, so eviction and
 * write-back of dirty blocks happen all the time.
 */
class BlockCacheModelTest {
  private static final int BLOCK = 4096;
  private static final int SIZE = 10 * BLOCK + 1234;

  enum Kind { READ, WRITE, WRITE_FUA, ZERO, TRIM, CACHE, FLUSH }

  record Op(Kind kind, int offset, int length, long seed) {}

  static Op randomOp(Random random) {
    int offset = random.nextInt(SIZE);
    int length = 1 + random.nextInt(3 * BLOCK);
    return new Op(Kind.values()[random.nextInt(Kind.values().length)], offset, Math.min(length, SIZE - offset), random.nextLong());
  }

  static Stream<Arguments> configurations() {
    return Stream.of(CacheMode.values()).flatMap(mode -> Stream.of(true, false).flatMap(bounded ->
        Stream.of(true, false).flatMap(inMemory -> Stream.of(true, false).map(onRead -> Arguments.of(mode, bounded, inMemory, onRead)))));
  }

  @ParameterizedTest(name = "{0} bounded={1} memory={2} cache-on-read={3}")
  @MethodSource("configurations")
  void behavesLikeAPlainDisk(CacheMode mode, boolean bounded, boolean inMemory, boolean cacheOnRead) {
    PropertyCheck.forAll(10, random -> PropertyCheck.listOf(random, 1, 60, BlockCacheModelTest::randomOp),
        ops -> runAgainstModel(ops, mode, bounded, inMemory, cacheOnRead));
  }

  private static void runAgainstModel(List<Op> ops, CacheMode mode, boolean bounded, boolean inMemory, boolean cacheOnRead)
      throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    new Random(42).nextBytes(disk.data);
    byte[] model = disk.data.clone();
    boolean[] undefined = new boolean[SIZE];
    CacheSettings settings = new CacheSettings(mode, cacheOnRead, bounded ? 3 * BLOCK : 0, 95, 80, BLOCK, inMemory);
    try (BlockCache cache = new BlockCache(settings, SIZE); Export below = disk.open(false, "")) {
      for (Op op : ops) {
        int from = op.offset();
        int to = from + op.length();
        switch (op.kind()) {
          case READ -> {
            ByteBuffer buffer = ByteBuffer.allocate(op.length());
            cache.read(below, buffer, from);
            assertThat(buffer.hasRemaining()).isFalse();
            assertDefinedEqual(buffer.array(), model, undefined, from, "read " + op);
          }
          case WRITE, WRITE_FUA -> {
            byte[] bytes = new byte[op.length()];
            new Random(op.seed()).nextBytes(bytes);
            cache.write(below, ByteBuffer.wrap(bytes), from, op.kind() == Kind.WRITE_FUA ? Flags.FUA : 0);
            System.arraycopy(bytes, 0, model, from, bytes.length);
            Arrays.fill(undefined, from, to, false);
            if (op.kind() == Kind.WRITE_FUA && mode != CacheMode.UNSAFE) {
              assertDefinedEqual(Arrays.copyOfRange(disk.data, from, to), model, undefined, from, "FUA write is below");
            }
          }
          case ZERO -> {
            cache.zero(below, from, op.length(), 0);
            Arrays.fill(model, from, to, (byte) 0);
            Arrays.fill(undefined, from, to, false);
          }
          case TRIM -> {
            cache.trim(below, from, op.length(), 0);
            Arrays.fill(undefined, from, to, true);
          }
          case CACHE -> cache.fill(below, from, op.length());
          case FLUSH -> {
            cache.flush(below);
            if (mode != CacheMode.UNSAFE) {
              assertDefinedEqual(disk.data, model, undefined, 0, "disk after flush");
            }
          }
        }
        if (mode == CacheMode.WRITETHROUGH) {
          assertDefinedEqual(disk.data, model, undefined, 0, "writethrough disk after " + op);
        }
        cache.checkInvariants();
      }
      ByteBuffer all = ByteBuffer.allocate(SIZE);
      cache.read(below, all, 0);
      assertDefinedEqual(all.array(), model, undefined, 0, "whole disk at the end");
    }
  }

  static void assertDefinedEqual(byte[] actual, byte[] model, boolean[] undefined, int at, String what) {
    for (int i = 0; i < actual.length; i++) {
      if (!undefined[at + i] && actual[i] != model[at + i]) {
        throw new AssertionError(what + ": byte " + (at + i) + " is " + actual[i] + ", expected " + model[at + i]);
      }
    }
  }
}
