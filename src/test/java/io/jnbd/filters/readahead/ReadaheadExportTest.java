package io.jnbd.filters.readahead;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** One connection through readahead, with the stream table's clock in the test's hands. */
class ReadaheadExportTest {
  private static final long MIB = 1 << 20;
  private static final long ROUND_TRIP_NANOS = 60_000_000;

  /** A remote disk: each read takes one round trip on the test's clock; cache requests are recorded. */
  private static final class RemoteDisk implements Export {
    final AtomicLong clock;
    final List<Long> cached = new CopyOnWriteArrayList<>();
    /** False stops the clock: reads then take no time. */
    volatile boolean clockRuns = true;

    RemoteDisk(AtomicLong clock) {
      this.clock = clock;
    }

    @Override
    public long size() {
      return 1024 * MIB;
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) {
      if (clockRuns) {
        clock.addAndGet(ROUND_TRIP_NANOS);
      }
      buffer.position(buffer.limit());
    }

    @Override
    public void cache(long offset, long length) {
      cached.add(offset);
    }

    @Override
    public void close() {}
  }

  @Test
  @Timeout(value = 30, unit = TimeUnit.SECONDS)
  void closingDropsThePrefetchesWaitingForTheirSendTime() throws Exception {
    // The clock stands still from the second read on, so only the first prefetch of the burst
    // that read starts is ever due; the rest wait for a time that never comes, until the
    // connection closes. (A second read taking its round trip would make them all due.)
    AtomicLong clock = new AtomicLong(1_000_000_000L);
    RemoteDisk disk = new RemoteDisk(clock);
    StreamTable table = new StreamTable(ReadaheadSettings.defaults(), disk.size(), clock::get);
    ReadaheadExport export = new ReadaheadExport(disk, table);
    // The first read is slow; over this slow disk the second, continuing it, confirms the stream.
    export.pread(ByteBuffer.allocate((int) MIB), 0);
    disk.clockRuns = false;
    export.pread(ByteBuffer.allocate((int) MIB), MIB);
    long firstPrefetch = 2 * MIB;
    while (disk.cached.isEmpty()) {
      Thread.onSpinWait();
    }
    export.close();
    assertThat(disk.cached).containsExactly(firstPrefetch);
    assertThat(table.overlapping(firstPrefetch, 64 * MIB)).as("prefetches left in flight").isEmpty();
    assertThat(table.stats().prefetches.sum()).isEqualTo(ReadaheadSettings.defaults().maxInFlight());
  }
}
