package io.jnbd.filters.cow;

import static io.jnbd.filters.cow.BlockStates.ABSENT;
import static io.jnbd.filters.cow.BlockStates.ALLOCATED;
import static io.jnbd.filters.cow.BlockStates.ZERO;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.CountingExport;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class OverlayTest {
  private static final int BLOCK = 4096;

  @TempDir Path temp;

  private static ArrayDisk randomDisk(int size, long seed) {
    ArrayDisk disk = new ArrayDisk(size);
    new Random(seed).nextBytes(disk.data);
    return disk;
  }

  private static byte[] read(Overlay overlay, CountingExport below, long offset, int length, boolean copyIn) throws Exception {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    overlay.read(below, buffer, offset, copyIn);
    assertThat(buffer.hasRemaining()).isFalse();
    return buffer.array();
  }

  static Stream<Arguments> storesAndSizes() {
    return Stream.of(true, false).flatMap(memory -> Stream.of(
        Arguments.of(memory, 64 * BLOCK, BLOCK),
        Arguments.of(memory, 64 * BLOCK + 1000, BLOCK),
        Arguments.of(memory, 300_000, 64 * 1024)));
  }

  /**
   * Random writes, zeroes, trims, reads (copying in or not) and extents against a plain byte
   * array: the overlay must read back like a disk, report extents that agree with the data, and
   * never write below.
   */
  @ParameterizedTest(name = "memory={0} size={1} block={2}")
  @MethodSource("storesAndSizes")
  void actsLikeADiskAndNeverWritesBelow(boolean inMemory, int size, int blockSize) throws Exception {
    long seed = Long.getLong("jnbd.seed", System.nanoTime());
    Random random = new Random(seed);
    ArrayDisk disk = randomDisk(size, seed);
    Arrays.fill(disk.data, size / 4, size / 2, (byte) 0);
    byte[] original = disk.data.clone();
    byte[] model = disk.data.clone();
    CountingExport below = new CountingExport(disk.open(true, ""));
    String why = "seed " + seed + ", -Djnbd.seed to repeat";
    try (Overlay overlay = new Overlay(size, blockSize, inMemory, temp)) {
      for (int step = 0; step < 1500; step++) {
        int offset = random.nextInt(size);
        int length = 1 + random.nextInt(Math.min(size - offset, 3 * blockSize));
        switch (random.nextInt(6)) {
          case 0, 1 -> {
            byte[] bytes = new byte[length];
            random.nextBytes(bytes);
            overlay.write(below, ByteBuffer.wrap(bytes), offset);
            System.arraycopy(bytes, 0, model, offset, length);
          }
          case 2 -> {
            overlay.zero(below, offset, length, random.nextBoolean());
            Arrays.fill(model, offset, offset + length, (byte) 0);
          }
          case 3 -> {
            overlay.trim(offset, length);
            for (long start = (offset + blockSize - 1L) / blockSize * blockSize; start < offset + length; start += blockSize) {
              int end = (int) Math.min(size, start + blockSize);
              if (end <= offset + length) {
                Arrays.fill(model, (int) start, end, (byte) 0);
              }
            }
          }
          case 4 -> assertThat(read(overlay, below, offset, length, random.nextBoolean()))
              .as("read of %d at %d, %s", length, offset, why).isEqualTo(Arrays.copyOfRange(model, offset, offset + length));
          default -> {
            Extents extents = new Extents(offset, offset + length);
            overlay.extents(below, true, offset, length, random.nextBoolean() ? Flags.REQ_ONE : 0, extents);
            assertThat(extents.count()).isPositive();
            long at = offset;
            for (int i = 0; i < extents.count(); i++) {
              if ((extents.type(i) & Extents.ZERO) != 0) {
                byte[] zeroes = new byte[(int) extents.length(i)];
                assertThat(Arrays.copyOfRange(model, (int) at, (int) (at + extents.length(i))))
                    .as("extent %d at %d reported zero, %s", i, at, why).isEqualTo(zeroes);
              }
              at += extents.length(i);
            }
          }
        }
      }
      assertThat(read(overlay, below, 0, size, false)).as(why).isEqualTo(model);
    }
    assertThat(below.pwrites.get()).isZero();
    assertThat(disk.data).isEqualTo(original);
  }

  @Test
  void aPartialWriteToAnAbsentBlockKeepsTheRestOfItFromBelow() throws Exception {
    ArrayDisk disk = randomDisk(16 * BLOCK, 1);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (Overlay overlay = new Overlay(disk.data.length, BLOCK, false, temp)) {
      overlay.write(below, ByteBuffer.wrap(new byte[] {1, 2, 3}), BLOCK + 100);
      assertThat(overlay.state(1)).isEqualTo(ALLOCATED);
      assertThat(below.preads.get()).as("the block read below once").isEqualTo(1);
      byte[] expected = Arrays.copyOfRange(disk.data, BLOCK, 2 * BLOCK);
      expected[100] = 1;
      expected[101] = 2;
      expected[102] = 3;
      assertThat(read(overlay, below, BLOCK, BLOCK, false)).isEqualTo(expected);
      assertThat(below.preads.get()).as("then read from the overlay").isEqualTo(1);
    }
  }

  @Test
  void readsOfAbsentBlocksAreOneReadBelowPerRun() throws Exception {
    ArrayDisk disk = randomDisk(64 * BLOCK, 2);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (Overlay overlay = new Overlay(disk.data.length, BLOCK, true, temp)) {
      overlay.write(below, ByteBuffer.wrap(new byte[BLOCK]), 10 * BLOCK);
      long before = below.preads.get();
      read(overlay, below, 100, 30 * BLOCK, false);
      assertThat(below.preads.get() - before).as("blocks 0-9 and 11-30, around the written one").isEqualTo(2);
    }
  }

  @ParameterizedTest
  @ValueSource(booleans = {true, false})
  void copyOnReadKeepsWholeBlocksSoTheNextReadStaysAbove(boolean inMemory) throws Exception {
    ArrayDisk disk = randomDisk(16 * BLOCK, 3);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (Overlay overlay = new Overlay(disk.data.length, BLOCK, inMemory, temp)) {
      assertThat(read(overlay, below, BLOCK + 10, 2 * BLOCK, true)).isEqualTo(Arrays.copyOfRange(disk.data, BLOCK + 10, 3 * BLOCK + 10));
      assertThat(below.preads.get()).isEqualTo(1);
      assertThat(below.readBytes.get()).as("whole blocks 1-3").isEqualTo(3 * BLOCK);
      assertThat(new byte[] {overlay.state(0), overlay.state(1), overlay.state(2), overlay.state(3), overlay.state(4)})
          .containsExactly(ABSENT, ALLOCATED, ALLOCATED, ALLOCATED, ABSENT);
      assertThat(read(overlay, below, BLOCK, 3 * BLOCK, false)).isEqualTo(Arrays.copyOfRange(disk.data, BLOCK, 4 * BLOCK));
      assertThat(below.preads.get()).isEqualTo(1);
    }
  }

  @Test
  void aCopyFromBelowNeverReplacesAWrittenBlock() throws Exception {
    ArrayDisk disk = randomDisk(4 * BLOCK, 4);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (Overlay overlay = new Overlay(disk.data.length, BLOCK, true, temp)) {
      byte[] written = new byte[BLOCK];
      Arrays.fill(written, (byte) 7);
      overlay.write(below, ByteBuffer.wrap(written), BLOCK);
      overlay.copyIn(below, 0, 4 * BLOCK);
      assertThat(read(overlay, below, BLOCK, BLOCK, false)).isEqualTo(written);
      assertThat(read(overlay, below, 0, BLOCK, false)).isEqualTo(Arrays.copyOf(disk.data, BLOCK));
      assertThat(overlay.state(0)).isEqualTo(ALLOCATED);
    }
  }

  /** The copy's read below is held until the write is done: the copy must then leave the block alone. */
  @Test
  void aCopyOnReadThatRacesAWriteDoesNotUndoIt() throws Exception {
    ArrayDisk disk = randomDisk(4 * BLOCK, 6);
    CountingExport below = new CountingExport(disk.open(true, ""));
    below.gate = new CountDownLatch(1);
    try (Overlay overlay = new Overlay(disk.data.length, BLOCK, true, temp)) {
      AtomicReference<byte[]> reader = new AtomicReference<>();
      Thread copying = Thread.ofPlatform().start(() -> {
        try {
          reader.set(read(overlay, below, 0, BLOCK, true));
        } catch (Exception e) {
          throw new AssertionError(e);
        }
      });
      below.readStarted.await();
      byte[] written = new byte[BLOCK];
      Arrays.fill(written, (byte) 7);
      overlay.write(below, ByteBuffer.wrap(written), 0);
      below.gate.countDown();
      copying.join();
      assertThat(reader.get()).as("the racing read got the old bytes").isEqualTo(Arrays.copyOf(disk.data, BLOCK));
      assertThat(read(overlay, below, 0, BLOCK, false)).isEqualTo(written);
    }
  }

  /** Zeroes without NO_HOLE become holes; with it, allocated zeroes, as the client asked. */
  @Test
  void extentsMergeTheOverlayWithBelow() throws Exception {
    ArrayDisk disk = new ArrayDisk(16 * BLOCK);
    Arrays.fill(disk.data, 0, 4 * BLOCK, (byte) 9);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (Overlay overlay = new Overlay(disk.data.length, BLOCK, true, temp)) {
      overlay.write(below, ByteBuffer.wrap(new byte[] {1}), 8 * BLOCK + 5);
      overlay.zero(below, BLOCK, BLOCK, true);
      overlay.trim(2 * BLOCK + 1, BLOCK);
      overlay.zero(below, 12 * BLOCK, BLOCK, false);
      Extents extents = new Extents(0, 16 * BLOCK);
      overlay.extents(below, true, 0, 16 * BLOCK, 0, extents);
      assertThat(describe(extents)).containsExactly(
          BLOCK + ":data", BLOCK + ":hole", 2 * BLOCK + ":data", 4 * BLOCK + ":hole", BLOCK + ":data", 3 * BLOCK + ":hole",
          BLOCK + ":data", 3 * BLOCK + ":hole");
      Extents noExtentsBelow = new Extents(0, 16 * BLOCK);
      overlay.extents(below, false, 0, 16 * BLOCK, 0, noExtentsBelow);
      assertThat(describe(noExtentsBelow)).containsExactly(BLOCK + ":data", BLOCK + ":hole", 14 * BLOCK + ":data");
    }
  }

  private static String[] describe(Extents extents) {
    String[] out = new String[extents.count()];
    for (int i = 0; i < extents.count(); i++) {
      out[i] = extents.length(i) + (extents.type(i) == Extents.HOLE_ZERO ? ":hole" : extents.type(i) == 0 ? ":data" : ":" + extents.type(i));
    }
    return out;
  }

  @Test
  void trimDropsOnlyWholeBlocksIncludingAShortLastOne() throws Exception {
    int size = 4 * BLOCK + 100;
    ArrayDisk disk = randomDisk(size, 5);
    CountingExport below = new CountingExport(disk.open(true, ""));
    try (Overlay overlay = new Overlay(size, BLOCK, true, temp)) {
      overlay.trim(BLOCK / 2, size - BLOCK / 2);
      assertThat(new byte[] {overlay.state(0), overlay.state(1), overlay.state(2), overlay.state(3), overlay.state(4)})
          .containsExactly(ABSENT, ZERO, ZERO, ZERO, ZERO);
      assertThat(read(overlay, below, 0, BLOCK, false)).isEqualTo(Arrays.copyOf(disk.data, BLOCK));
      assertThat(read(overlay, below, BLOCK, size - BLOCK, false)).isEqualTo(new byte[size - BLOCK]);
    }
  }
}
