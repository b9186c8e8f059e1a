package io.jnbd.filters.readahead;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.filters.readahead.StreamTable.Prefetch;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Stream detection and window policy, driven directly with reads (no threads, no I/O). */
class StreamTableTest {
  private static final long MIB = 1 << 20;
  private static final long SIZE = 1024 * MIB;

  private final StreamTable table = new StreamTable(ReadaheadSettings.defaults(), SIZE);
  private final List<Prefetch> issued = new ArrayList<>();
  /** The injected clock of {@link #remote}, in nanoseconds. */
  private final AtomicLong clock = new AtomicLong(5_000_000_000L);
  /** A table for the tests of a slow layer below, on the injected clock. */
  private final StreamTable remote = new StreamTable(ReadaheadSettings.defaults(), SIZE, clock::get);
  private final long roundTrip = 80_000_000;

  /** Reads, and completes every prefetch at once (as if the layer below were instant). */
  private void read(long offset, long length) {
    List<Prefetch> due = new ArrayList<>(table.onRead(offset, length));
    while (!due.isEmpty()) {
      Prefetch p = due.remove(0);
      issued.add(p);
      due.addAll(table.completed(p, 1_000_000, true, true));
    }
  }

  private long prefetchedBytes() {
    return table.stats().prefetchedBytes.sum();
  }

  /** A client read that took {@code nanos} below the filter; returns the prefetches it made due. */
  private static List<Prefetch> readTaking(StreamTable table, long offset, long length, long nanos) {
    List<Prefetch> due = table.onRead(offset, length);
    table.readTook(nanos);
    return due;
  }

  @Test
  void overASlowLayerANewStreamStartsAtItsBoundNotAtTheInitialWindow() {
    StreamTable local = new StreamTable(ReadaheadSettings.defaults(), SIZE);
    // The first read went to the origin; the two that confirm the stream were served by the
    // cache below, which filled a larger block than the first read asked for.
    readTaking(local, 0, 256 * 1024, StreamTable.SLOW_READ_NANOS - 1);
    readTaking(remote, 0, 256 * 1024, StreamTable.SLOW_READ_NANOS);
    for (long offset = 256 * 1024; offset < 3 * 256 * 1024; offset += 256 * 1024) {
      readTaking(local, offset, 256 * 1024, 100_000);
      readTaking(remote, offset, 256 * 1024, 100_000);
    }
    long next = 3 * 256 * 1024;
    assertThat(local.windowAt(next)).isEqualTo(ReadaheadSettings.defaults().window());
    // The bound's floor: the in-flight limit in chunks.
    assertThat(remote.windowAt(next)).isEqualTo(8 * ReadaheadSettings.defaults().chunk());
  }

  @Test
  void aSlowReadLongAgoDoesNotMakeANewStreamStartLarge() {
    readTaking(table, 0, 4096, StreamTable.SLOW_READ_NANOS);
    Random random = new Random(11);
    for (int i = 0; i < 20; i++) {
      readTaking(table, 512 * MIB + random.nextLong(256) * MIB, 4096, 100_000);
    }
    for (long offset = 0; offset < 3 * 256 * 1024; offset += 256 * 1024) {
      readTaking(table, 900 * MIB + offset, 256 * 1024, 100_000);
    }
    assertThat(table.windowAt(900 * MIB + 3 * 256 * 1024)).isEqualTo(ReadaheadSettings.defaults().window());
  }

  /** Two 1 MiB reads at the start of {@link #remote}, each a round trip: the burst they make due. */
  private List<Prefetch> slowStreamBurst() {
    readTaking(remote, 0, MIB, roundTrip);
    return readTaking(remote, MIB, MIB, roundTrip);
  }

  @Test
  void overASlowLayerABurstOfPrefetchesIsSpreadOverOneRoundTrip() {
    List<Prefetch> burst = slowStreamBurst();
    int maxInFlight = ReadaheadSettings.defaults().maxInFlight();
    assertThat(burst).hasSize(maxInFlight);
    for (int i = 0; i < burst.size(); i++) {
      assertThat(burst.get(i).sendAt()).as("prefetch %d", i).isEqualTo(clock.get() + i * roundTrip / maxInFlight);
    }
    // Once the burst is sent, a prefetch that a completion makes due goes at once.
    clock.addAndGet(roundTrip * 3);
    Prefetch first = burst.get(0);
    remote.completed(first, roundTrip * 2, true, true);
    List<Prefetch> later = readTaking(remote, first.offset() + first.length(), MIB, 100_000);
    assertThat(later).hasSize(1);
    assertThat(later.get(0).sendAt()).isEqualTo(clock.get());
  }

  @Test
  void theSpacingFollowsThePrefetchesNotAClientReadThatABusyMachineSlowed() {
    List<Prefetch> burst = slowStreamBurst();
    clock.addAndGet(2 * roundTrip);
    burst.forEach(p -> remote.completed(p, roundTrip, true, false));
    // A second stream whose reads the cache below served, but in 3 ms on a loaded machine.
    long busyRead = StreamTable.SLOW_READ_NANOS + 1_000_000;
    readTaking(remote, 512 * MIB, MIB, busyRead);
    List<Prefetch> second = readTaking(remote, 513 * MIB, MIB, busyRead);
    int maxInFlight = ReadaheadSettings.defaults().maxInFlight();
    assertThat(second).as("the two streams share the window").hasSize(maxInFlight / 2);
    assertThat(second.get(1).sendAt() - second.get(0).sendAt()).isEqualTo(roundTrip / maxInFlight);
  }

  @Test
  void overASlowLayerALargeReadThatContinuesTheLastOneConfirmsAStreamAtOnce() {
    StreamTable remote = new StreamTable(ReadaheadSettings.defaults(), SIZE);
    StreamTable local = new StreamTable(ReadaheadSettings.defaults(), SIZE);
    long large = StreamTable.LARGE_READ;
    readTaking(remote, 0, large, StreamTable.SLOW_READ_NANOS);
    readTaking(local, 0, large, StreamTable.SLOW_READ_NANOS - 1);
    assertThat(readTaking(remote, large, large, 100_000)).as("over a slow layer").isNotEmpty();
    assertThat(readTaking(local, large, large, 100_000)).as("over a fast layer").isEmpty();
  }

  @Test
  void overASlowLayerSmallOrGappedReadsStillNeedEveryAdvance() {
    StreamTable small = new StreamTable(ReadaheadSettings.defaults(), SIZE);
    readTaking(small, 0, StreamTable.LARGE_READ - 4096, StreamTable.SLOW_READ_NANOS);
    assertThat(readTaking(small, StreamTable.LARGE_READ - 4096, 4096, StreamTable.SLOW_READ_NANOS)).isEmpty();
    StreamTable gapped = new StreamTable(ReadaheadSettings.defaults(), SIZE);
    readTaking(gapped, 0, MIB, StreamTable.SLOW_READ_NANOS);
    assertThat(readTaking(gapped, MIB + 4096, MIB, StreamTable.SLOW_READ_NANOS)).isEmpty();
    assertThat(readTaking(gapped, 2 * MIB + 4096, MIB, StreamTable.SLOW_READ_NANOS)).as("the second advance").isNotEmpty();
  }

  @Test
  void overAFastLayerPrefetchesAreSentAtOnce() {
    AtomicLong clock = new AtomicLong(5_000_000_000L);
    StreamTable local = new StreamTable(ReadaheadSettings.defaults(), SIZE, clock::get);
    List<Prefetch> due = new ArrayList<>();
    for (long offset = 0; offset < 16 * MIB; offset += MIB) {
      due.addAll(readTaking(local, offset, MIB, StreamTable.SLOW_READ_NANOS - 1));
    }
    assertThat(due).isNotEmpty().allMatch(p -> p.sendAt() == clock.get());
  }

  @Test
  void sequentialReadsArePrefetchedAheadAfterConfirmation() {
    read(0, 256 * 1024);
    read(256 * 1024, 256 * 1024);
    assertThat(issued).as("one advancing read is not yet a stream").isEmpty();
    read(512 * 1024, 256 * 1024);
    assertThat(issued).isNotEmpty();
    assertThat(issued.get(0).offset()).isEqualTo(768 * 1024);
    for (long offset = 768 * 1024; offset < 64 * MIB; offset += 256 * 1024) {
      read(offset, 256 * 1024);
    }
    // Almost every read after the first few was covered by an earlier prefetch.
    assertThat(table.stats().hits.sum()).isGreaterThan(240);
    assertThat(table.stats().misses.sum()).isLessThan(5);
    // Prefetches are large: the window grew past the chunk size.
    assertThat(issued.stream().mapToLong(Prefetch::length).max().orElse(0)).isEqualTo(4 * MIB);
    // Each byte was prefetched once.
    long total = issued.stream().mapToLong(Prefetch::length).sum();
    assertThat(total).isEqualTo(issued.get(issued.size() - 1).offset() + issued.get(issued.size() - 1).length() - 768 * 1024);
  }

  @Test
  void aSerialReadersWindowReachesTheInFlightLimitOfChunksBeforeAnyMeasurement() {
    // Nothing completes, so there is no bandwidth-delay estimate: the floor alone bounds the
    // window. Two chunks in flight left a serial reader waiting on a 20 ms origin, half the
    // limit one 50 ms from the origin behind a 200 MiB/s link.
    List<Prefetch> outstanding = new ArrayList<>();
    for (long offset = 0; offset < 8 * MIB; offset += 64 * 1024) {
      outstanding.addAll(table.onRead(offset, 64 * 1024));
    }
    long chunk = ReadaheadSettings.defaults().chunk();
    assertThat(table.windowAt(8 * MIB)).isEqualTo(ReadaheadSettings.defaults().maxInFlight() * chunk);
    Prefetch last = outstanding.get(outstanding.size() - 1);
    assertThat(last.offset() + last.length()).as("prefetched up to").isGreaterThan(8 * MIB + 3 * chunk);
  }

  @Test
  void reverseReadsAreNotPrefetched() {
    for (long offset = 100 * MIB; offset > 90 * MIB; offset -= 256 * 1024) {
      read(offset, 256 * 1024);
    }
    assertThat(issued).isEmpty();
  }

  @Test
  void randomSmallReadsAreNotPrefetched() {
    Random random = new Random(7);
    for (int i = 0; i < 2000; i++) {
      read((random.nextLong(SIZE / 4096)) * 4096, 4096);
    }
    assertThat(issued).isEmpty();
  }

  @Test
  void fourInterleavedStreamsAreEachPrefetched() {
    for (long step = 0; step < 40; step++) {
      for (int stream = 0; stream < 4; stream++) {
        read(stream * 128 * MIB + step * 256 * 1024, 256 * 1024);
      }
    }
    for (int stream = 0; stream < 4; stream++) {
      long from = stream * 128 * MIB;
      assertThat(issued).as("stream %d", stream).anyMatch(p -> p.offset() >= from && p.offset() < from + 128 * MIB);
    }
    assertThat(table.stats().hits.sum()).isGreaterThan(4 * 30);
    // The streams share the window budget, so the cache below can hold all they prefetch.
    long windows = 0;
    for (int stream = 0; stream < 4; stream++) {
      long window = table.windowAt(stream * 128 * MIB + 40 * 256 * 1024);
      assertThat(window).isPositive();
      windows += window;
    }
    assertThat(windows).isLessThanOrEqualTo(ReadaheadSettings.defaults().maxWindow());
  }

  @Test
  void outOfOrderReadsWithinAWindowStayOneStream() {
    // qemu-img: eight 2 MiB reads in flight, arriving shuffled within each group of eight.
    Random random = new Random(3);
    for (long group = 0; group < 8; group++) {
      List<Long> offsets = new ArrayList<>();
      for (long i = 0; i < 8; i++) {
        offsets.add((group * 8 + i) * 2 * MIB);
      }
      Collections.shuffle(offsets, random);
      offsets.forEach(offset -> read(offset, 2 * MIB));
    }
    assertThat(issued).isNotEmpty();
    // No prefetch went backwards or twice over the same bytes.
    for (int i = 1; i < issued.size(); i++) {
      assertThat(issued.get(i).offset()).isGreaterThanOrEqualTo(issued.get(i - 1).offset() + issued.get(i - 1).length());
    }
    assertThat(table.stats().hits.sum()).isGreaterThan(32);
  }

  @Test
  void unusedPrefetchesShrinkTheWindow() {
    long before = table.allowance();
    // Short sequential bursts in many places, each abandoned with prefetched data ahead of it.
    for (int burst = 0; burst < 12; burst++) {
      long base = burst * 64 * MIB;
      for (int i = 0; i < 6; i++) {
        read(base + i * 256 * 1024L, 256 * 1024);
      }
    }
    assertThat(table.stats().unusedBytes.sum()).isGreaterThan(0);
    assertThat(table.allowance()).isLessThan(before);
    // A new stream now gets no further ahead than the reduced allowance.
    long base = 900 * MIB;
    for (int i = 0; i < 20; i++) {
      read(base + i * 256 * 1024L, 256 * 1024);
    }
    long end = base + 20 * 256 * 1024L;
    assertThat(table.windowAt(end)).isLessThanOrEqualTo(Math.max(table.allowance(), ReadaheadSettings.defaults().window()));
  }

  @Test
  void failedPrefetchesAreCountedAndReleaseTheirSlot() {
    List<Prefetch> due = new ArrayList<>();
    for (long offset = 0; offset < 4 * MIB; offset += 256 * 1024) {
      due.addAll(table.onRead(offset, 256 * 1024));
    }
    assertThat(due).isNotEmpty();
    for (Prefetch p : due) {
      table.completed(p, 1000, false, false);
    }
    assertThat(table.stats().errors.sum()).isEqualTo(due.size());
    // The in-flight budget came back: the stream keeps prefetching.
    List<Prefetch> later = new ArrayList<>();
    for (long offset = 4 * MIB; offset < 16 * MIB; offset += 256 * 1024) {
      later.addAll(table.onRead(offset, 256 * 1024));
    }
    assertThat(later).isNotEmpty();
  }
}
