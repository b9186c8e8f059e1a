package io.jnbd.filters.readahead;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.filters.cache.CacheFilter;
import io.jnbd.server.Stack;
import io.jnbd.testing.SlowDisk;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A serial reader over a slow disk: with readahead (over the cache filter, or over its own cache)
 * the disk must see few large reads and each byte about once. Counts only; how long it takes is
 * measured elsewhere.
 *
 * <p>Nothing here depends on time. The disk is slow by holding each read until the reader needs
 * it ({@link SlowDisk#holdReadsAhead}), so the reader waits for every prefetch whatever the load
 * of the machine; and readahead-max-window is at most the window the filter allows before any
 * measurement (half its in-flight limit of chunks, 16M by default), so the latency it measures
 * cannot change the window.
 */
class ReadaheadOverSlowDiskTest {
  private static final int SIZE = 32 << 20;

  private static byte[] readAll(Export export, SlowDisk disk, int requestSize) throws Exception {
    byte[] copy = new byte[SIZE];
    try {
      for (int offset = 0; offset < SIZE; offset += requestSize) {
        ByteBuffer buffer = ByteBuffer.wrap(copy, offset, requestSize).slice();
        disk.readerAt(offset + requestSize);
        export.pread(buffer, offset);
        assertThat(buffer.hasRemaining()).isFalse();
      }
    } finally {
      // Closing waits for the prefetches still held.
      disk.readerAt(Long.MAX_VALUE);
    }
    return copy;
  }

  private static Stack stack(SlowDisk disk, boolean withCacheFilter, String... cacheConfig) {
    List<Filter> filters = new ArrayList<>();
    filters.add(new ReadaheadFilter());
    if (withCacheFilter) {
      filters.add(new CacheFilter());
    }
    return Stacks.configured(filters, disk, cacheConfig);
  }

  @ParameterizedTest
  @CsvSource({"true, 262144", "true, 65536", "false, 262144", "false, 65536"})
  @Timeout(60)
  void serialReadsBecomeFewLargeReadsBelow(boolean withCacheFilter, int requestSize) throws Exception {
    SlowDisk disk = new SlowDisk(SIZE, 0, 11);
    disk.holdReadsAhead();
    long maxWindow = withCacheFilter ? 8 << 20 : 16 << 20;
    Stack stack = withCacheFilter
        ? stack(disk, true, "cache-max-size=16M", "readahead-max-window=" + maxWindow)
        : stack(disk, false, "readahead-max-window=" + maxWindow);
    ReadaheadFilter readahead = (ReadaheadFilter) stack.filters().get(0);
    try (Export export = stack.open(true, "")) {
      byte[] copy = readAll(export, disk, requestSize);
      assertThat(Arrays.mismatch(copy, disk.data)).as("first wrong byte").isEqualTo(-1);
      assertThat(readahead.tableOf("").windowAt(SIZE)).as("the window at the end").isEqualTo(maxWindow);
    } finally {
      stack.unload();
    }
    long reads = SIZE / requestSize;
    assertThat(disk.preads.get()).as("reads below for %d client reads", reads).isLessThan(reads / 4).isLessThan(40);
    assertThat(disk.bytes.get()).as("bytes read below").isLessThanOrEqualTo((long) (SIZE * 1.10));
    assertThat(disk.largestRead.get()).isGreaterThanOrEqualTo(4 << 20);
  }

  @ParameterizedTest
  @CsvSource({"true", "false"})
  void failingPrefetchesNeverFailReads(boolean withCacheFilter) throws Exception {
    SlowDisk disk = new SlowDisk(SIZE, 0, 12);
    // Only prefetches read more than a client request at once.
    disk.failing = (offset, length) -> length > 256 * 1024;
    Stack stack = stack(disk, withCacheFilter);
    ReadaheadFilter readahead = (ReadaheadFilter) stack.filters().get(0);
    try (Export export = stack.open(true, "")) {
      byte[] copy = readAll(export, disk, 256 * 1024);
      assertThat(Arrays.mismatch(copy, disk.data)).as("first wrong byte").isEqualTo(-1);
      assertThat(readahead.tableOf("").stats().errors.sum()).isGreaterThan(0);
    } finally {
      stack.unload();
    }
  }
}
