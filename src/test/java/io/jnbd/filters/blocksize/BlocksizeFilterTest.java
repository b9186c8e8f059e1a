package io.jnbd.filters.blocksize;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class BlocksizeFilterTest {
  private static final int BLOCK = 4096;

  private static Stack stack(AlignedDisk disk, String... config) {
    return Stacks.configured(List.of(new BlocksizeFilter()), disk, config);
  }

  @Test
  void unalignedRequestsReachAnAlignedDiskAlignedAndGiveTheRightBytes() throws Exception {
    AlignedDisk disk = new AlignedDisk(256 * 1024 + 100, BLOCK);
    byte[] model = new byte[256 * 1024];
    Random random = new Random(42);
    random.nextBytes(disk.disk.data);
    System.arraycopy(disk.disk.data, 0, model, 0, model.length);
    try (Export export = stack(disk, "maxdata=16k", "maxlen=32k").open(false, "")) {
      assertThat(export.size()).as("size rounded down to minblock").isEqualTo(model.length);
      for (int i = 0; i < 2000; i++) {
        int offset = random.nextInt(model.length);
        int length = random.nextInt(Math.min(model.length - offset, 40_000) + 1);
        switch (random.nextInt(4)) {
          case 0 -> {
            ByteBuffer read = ByteBuffer.allocate(length);
            export.pread(read, offset);
            assertThat(read.array()).as("read %d at %d", length, offset).isEqualTo(Arrays.copyOfRange(model, offset, offset + length));
          }
          case 1 -> {
            byte[] data = new byte[length];
            random.nextBytes(data);
            export.pwrite(ByteBuffer.wrap(data), offset, 0);
            System.arraycopy(data, 0, model, offset, length);
          }
          case 2 -> {
            export.zero(offset, length, Flags.MAY_TRIM);
            Arrays.fill(model, offset, offset + length, (byte) 0);
          }
          default -> {
            export.trim(offset, length, 0);
            long start = (offset + BLOCK - 1) / BLOCK * BLOCK;
            long end = (long) (offset + length) / BLOCK * BLOCK;
            if (start < end) {
              Arrays.fill(model, (int) start, (int) end, (byte) 0);
            }
          }
        }
      }
    }
    assertThat(Arrays.copyOf(disk.disk.data, model.length)).isEqualTo(model);
    assertThat(disk.largestRead.get()).isEqualTo(16 * 1024);
    assertThat(disk.largestWrite.get()).isEqualTo(16 * 1024);
    assertThat(disk.largestOther.get()).isEqualTo(32 * 1024);
  }

  @Test
  void concurrentUnalignedWritesToOneBlockAreAllKept() throws Exception {
    AlignedDisk disk = new AlignedDisk(2 * BLOCK, BLOCK);
    Stack stack = stack(disk);
    int writers = 8;
    int slice = 2 * BLOCK / writers;
    ExecutorService pool = Executors.newFixedThreadPool(writers);
    try {
      List<Future<?>> done = new ArrayList<>();
      for (int w = 0; w < writers; w++) {
        int writer = w;
        // Each writer owns a slice, sometimes across the block boundary; aligned writes of
        // whole blocks of zeroes are not mixed in because they would legitimately overwrite.
        done.add(pool.submit(() -> {
          try (Export export = stack.open(false, "")) {
            for (int round = 1; round <= 200; round++) {
              byte[] data = new byte[slice - 2];
              Arrays.fill(data, (byte) (writer * 16 + round % 16));
              export.pwrite(ByteBuffer.wrap(data), (long) writer * slice + 1, 0);
            }
          }
          return null;
        }));
      }
      for (Future<?> future : done) {
        future.get();
      }
    } finally {
      pool.shutdownNow();
    }
    for (int writer = 0; writer < writers; writer++) {
      for (int i = 1; i < slice - 1; i++) {
        assertThat(disk.disk.data[writer * slice + i]).as("writer %d byte %d", writer, i).isEqualTo((byte) (writer * 16 + 200 % 16));
      }
    }
  }

  @Test
  void fastZeroThatWouldBeSplitOrPartlyWrittenIsRefusedAsNotFast() throws Exception {
    AlignedDisk disk = new AlignedDisk(64 * 1024, BLOCK);
    try (Export export = stack(disk, "maxlen=8k").open(false, "")) {
      for (long[] request : new long[][] {{1, BLOCK}, {0, BLOCK + 1}, {0, 4 * BLOCK}}) {
        assertThatThrownBy(() -> export.zero(request[0], request[1], Flags.FAST_ZERO))
            .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOTSUP));
      }
      export.zero(0, 2 * BLOCK, Flags.FAST_ZERO);
      assertThat(disk.disk.nativeZeroes.get()).isEqualTo(1);
    }
  }

  @Test
  void fuaOnALayerThatOnlyEmulatesItBecomesOneFlushAfterThePieces() throws Exception {
    AlignedDisk disk = new AlignedDisk(64 * 1024, BLOCK);
    disk.disk.fua = Support.EMULATE;
    try (Export export = stack(disk, "maxdata=4k").open(false, "")) {
      export.pwrite(ByteBuffer.allocate(3 * BLOCK + 10), 5, Flags.FUA);
      assertThat(disk.disk.fuaWrites.get()).isZero();
      assertThat(disk.disk.flushes.get()).isEqualTo(1);
    }
    disk.disk.fua = Support.NATIVE;
    try (Export export = stack(disk, "maxdata=4k").open(false, "")) {
      export.pwrite(ByteBuffer.allocate(2 * BLOCK), 0, Flags.FUA);
      assertThat(disk.disk.fuaWrites.get()).isEqualTo(2);
      assertThat(disk.disk.flushes.get()).isEqualTo(1);
    }
  }

  @Test
  void extentsAreAskedAlignedAndClippedToTheRequest() throws Exception {
    AlignedDisk disk = new AlignedDisk(64 * 1024, BLOCK);
    disk.disk.data[BLOCK] = 1;
    try (Export export = stack(disk, "maxlen=8k").open(false, "")) {
      Extents extents = new Extents(100, 64 * 1024);
      export.extents(100, 64 * 1024 - 100, 0, extents);
      // Asked from 0 for maxlen, reported from 100: a hole, the one data byte, a hole to 8k.
      assertThat(extents.next()).isEqualTo(2 * BLOCK);
      assertThat(extents.count()).isEqualTo(3);
      assertThat(extents.length(0)).isEqualTo(BLOCK - 100);
      assertThat(extents.type(0)).isEqualTo(Extents.HOLE_ZERO);
      assertThat(extents.length(1)).isEqualTo(1);
      assertThat(extents.type(1)).isEqualTo(Extents.DATA);
    }
  }

  @Test
  void advertisesThatAnyRequestIsWelcome() throws Exception {
    AlignedDisk disk = new AlignedDisk(64 * 1024, BLOCK);
    try (Export export = stack(disk).open(false, "")) {
      assertThat(export.blockSize()).isEqualTo(new BlockSize(1, BLOCK, -1));
    }
    try (Export export = stack(new AlignedDisk(64 * 1024, 512), "minblock=64k").open(false, "")) {
      assertThat(export.blockSize()).isEqualTo(new BlockSize(1, 65536, -1));
    }
  }

  @Test
  void defaultsComeFromTheLayerBelow() {
    BlocksizeFilter filter = new BlocksizeFilter();
    assertThat(filter.limitsOver(null)).isEqualTo(new BlocksizeFilter.Limits(1, 64 << 20, 0xFFFF_FFFFL));
    assertThat(filter.limitsOver(new BlockSize(512, 4096, 2 << 20)))
        .isEqualTo(new BlocksizeFilter.Limits(512, 2 << 20, 0xFFFF_FFFFL - 511));
  }

  @Test
  void badParametersAreOneLineErrorsNamingTheKey() {
    Map<String, String> expected = Map.of(
        "minblock=3", "blocksize: minblock must be a power of 2: 3",
        "minblock=128k", "blocksize: minblock must not exceed 65536: 131072",
        "maxdata=0", "blocksize: maxdata must be non-zero: 0",
        "maxlen=8G", "blocksize: maxlen is too large (at most 4294967295): 8589934592",
        "minblock=512 maxdata=1000", "blocksize: maxdata must be a multiple of minblock 512: 1000");
    expected.forEach((keyValues, message) -> assertThatThrownBy(() -> stack(new AlignedDisk(BLOCK, BLOCK), keyValues.split(" ")))
        .as(keyValues).isInstanceOf(ConfigException.class).hasMessage(message));
    assertThatThrownBy(() -> new BlocksizeFilter().config("maxlen", "lots")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("blocksize: maxlen: ");
  }

  /** nbdsh does unaligned I/O to a disk that refuses it: only the filter makes this work. */
  @Test
  @Tag("slow")
  void nbdshReadsAndWritesUnalignedThroughAnAlignedDisk() throws Exception {
    Tools.require("nbdsh");
    AlignedDisk disk = new AlignedDisk(4 << 20, BLOCK);
    BlocksizeFilter filter = new BlocksizeFilter();
    filter.config("minblock", "4k");
    filter.config("maxdata", "64k");
    try (TestServer server = new TestServer(List.of(filter), disk, ServerConfig.defaults())) {
      String script = """
          import nbd
          h = nbd.NBD()
          h.connect_uri(URI)
          print(h.get_block_size(nbd.SIZE_MINIMUM))
          h.pwrite(b"\\xff" * 20000, 3000)
          h.zero(4093, 5000)
          print(h.pread(4, 4998).hex(), h.pread(4, 9091).hex())
          h.pwrite(b"hello, world", 4090)
          print(h.pread(12, 4090).decode())
          h.pwrite(bytes(range(256)) * 300, 10001)
          print(h.pread(76800, 10001) == bytes(range(256)) * 300)
          print(len(h.pread(1 << 20, 3)))
          """.replace("URI", "'" + server.uri() + "'");
      String out = Tools.run(List.of("nbdsh", "-c", script), Map.of(), 60).assertSuccess().stdout();
      assertThat(out.lines()).containsExactly("1", "ffff0000 0000ffff", "hello, world", "True", "1048576");
      assertThat(disk.largestRead.get()).isEqualTo(64 * 1024);
      int readsBefore = disk.preads.get();
      Tools.nbdsh(server.uri(), "h.pread(1 << 20, 3)").assertSuccess();
      // The 1 MiB read at 3 reaches the disk as a head block, 15 full 64k reads and the rest.
      assertThat(disk.preads.get() - readsBefore).isEqualTo(18);
    }
  }

  @Test
  void onlyReadsThatGoBelowAsTheyAreAreHandedOver() throws Exception {
    ArrayDisk disk = new ArrayDisk(256 * 1024);
    new Random(3).nextBytes(disk.data);
    disk.handsOver = true;
    Stack stack = Stacks.configured(List.of(new BlocksizeFilter()), disk, "minblock=4k", "maxdata=64k");
    try (Export export = stack.open(false, "")) {
      assertThat(Exports.handedOver(export, BLOCK, 16 * 1024)).isEqualTo(Arrays.copyOfRange(disk.data, BLOCK, BLOCK + 16 * 1024));
      assertThat(export.readData(BLOCK + 512, BLOCK)).as("unaligned").isNull();
      assertThat(export.readData(0, 1000)).as("widened").isNull();
      assertThat(export.readData(0, 128 * 1024)).as("split").isNull();
      assertThat(disk.viewsOut).hasValue(0);
    }
  }
}
