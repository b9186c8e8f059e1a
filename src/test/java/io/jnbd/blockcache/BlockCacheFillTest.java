package io.jnbd.blockcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.api.FilterExport;
import io.jnbd.testing.ArrayDisk;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Where a cache-on-read fill puts the bytes it reads below. */
class BlockCacheFillTest {
  private static final int BLOCK = 64 * 1024;

  /** Records the memory of every buffer a read below was handed. */
  private static final class BufferRecorder extends FilterExport {
    final List<long[]> ranges = new ArrayList<>();

    BufferRecorder(Export next) {
      super(next);
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      long address = MemorySegment.ofBuffer(buffer).address();
      synchronized (ranges) {
        ranges.add(new long[] {address, address + buffer.remaining()});
      }
      next.pread(buffer, offset);
    }
  }

  @Test
  void anAlignedReadFillsStraightIntoItsOwnBuffer() throws Exception {
    ArrayDisk disk = new ArrayDisk(8 << 20);
    new Random(7).nextBytes(disk.data);
    CacheSettings settings = new CacheSettings(CacheMode.WRITEBACK, true, 0, 95, 80, BLOCK, true);
    try (BlockCache cache = new BlockCache(settings, disk.data.length);
        Export opened = disk.open(true, "")) {
      BufferRecorder below = new BufferRecorder(opened);
      // Block 2 is cached already: the read below is two runs, both inside the reader's buffer.
      cache.fill(below, 2L * BLOCK, BLOCK);
      below.ranges.clear();
      int offset = BLOCK;
      int length = 5 << 20;
      ByteBuffer dst = ByteBuffer.allocateDirect(length);
      cache.read(below, dst, offset);

      assertThat(dst.flip().equals(ByteBuffer.wrap(disk.data, offset, length))).as("data").isTrue();
      long start = MemorySegment.ofBuffer(dst).address();
      long end = start + length;
      long outside = below.ranges.stream()
          .filter(r -> r[0] < start || r[1] > end)
          .mapToLong(r -> r[1] - r[0])
          .sum();
      long inside = below.ranges.stream()
          .filter(r -> r[0] >= start && r[1] <= end)
          .mapToLong(r -> r[1] - r[0])
          .sum();
      assertThat(outside).as("bytes read below into buffers other than the reader's").isZero();
      assertThat(inside).as("bytes read below into the reader's buffer").isEqualTo(length - BLOCK);
      assertThat(below.ranges).as("reads below").hasSize(2);
    }
  }
}
