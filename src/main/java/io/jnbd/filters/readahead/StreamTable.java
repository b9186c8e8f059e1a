package io.jnbd.filters.readahead;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The sequential streams of one export, shared by all its connections (nbdcopy reads four
 * regions over four connections; qemu-img keeps eight ascending reads in flight on one), and
 * the policy that turns reads into prefetches.
 *
 * <ul>
 *   <li><b>Matching.</b> A read belongs to the stream whose high-water mark ({@code next}) is
 *       nearest, if within a tolerance of 16 read lengths (at least 64 KiB) either side; reads
 *       arriving out of order inside that window stay in the stream. Any other read starts a new
 *       stream, replacing the least recently used one.
 *   <li><b>Confirmation.</b> Only reads that advance the high-water mark count; a stream
 *       prefetches after {@code confirm} of them, so random and backwards reads never do.
 *   <li><b>Window.</b> Starts at {@code window} and doubles with each advancing read, up to the
 *       smallest of: {@code max-window} shared by the streams read recently (the cache below
 *       must hold all their prefetched bytes); an allowance that halves whenever prefetched bytes go
 *       unused (left ahead of a stream that was abandoned) and doubles back as
 *       prefetched bytes are consumed; and twice the measured bandwidth-delay product of the
 *       layer below (at least half of {@code maxInFlight} chunks, and two), so the window stops growing once more bytes in flight
 *       no longer buy more throughput.
 *   <li><b>Issue.</b> Prefetches cover {@code [next, next + window)} in pieces of up to {@code
 *       chunk} bytes, with at most {@code maxInFlight} outstanding per export; a completed one
 *       issues the next, so the pipeline stays full between client reads.
 * </ul>
 */
final class StreamTable {
  private static final long MIN_TOLERANCE = 64 * 1024;
  private static final int TOLERANCE_READS = 16;
  /** A stream not read from in this many reads of the export no longer counts as active. */
  private static final int ACTIVE_READS = 256;

  /** One prefetch to send below: {@code cache(offset, length)}; done when it finished. */
  record Prefetch(Stream stream, long offset, long length, CompletableFuture<Void> done) {
    Prefetch(Stream stream, long offset, long length) {
      this(stream, offset, length, new CompletableFuture<>());
    }

    boolean overlaps(long from, long to) {
      return offset < to && from < offset + length;
    }
  }

  static final class Stream {
    long next;
    int advances;
    long window;
    long prefetchFrom;
    long prefetchedTo;
    long lastUsed;
    boolean retired;

    Stream(long next) {
      this.next = next;
      this.prefetchFrom = next;
      this.prefetchedTo = next;
    }
  }

  /** A read below that takes this long went to a remote layer, not a local disk. */
  static final long SLOW_READ_NANOS = 2_000_000;

  private final ReadaheadSettings settings;
  private final long size;
  private final ReentrantLock lock = new ReentrantLock();
  private final List<Stream> streams = new ArrayList<>();
  private final FetchEstimator estimator = new FetchEstimator();
  private final ReadaheadStats stats = new ReadaheadStats();
  private long clock;
  private final List<Prefetch> inFlight = new ArrayList<>();
  private long allowance;
  private long consumedSinceWaste;
  /** How long the latest client read took below this filter. */
  private long lastReadNanos;

  StreamTable(ReadaheadSettings settings, long size) {
    this.settings = settings;
    this.size = size;
    this.allowance = settings.maxWindow();
  }

  ReadaheadStats stats() {
    return stats;
  }

  /** Accounts a client read and returns the prefetches it makes due. */
  List<Prefetch> onRead(long offset, long length) {
    lock.lock();
    try {
      stats.reads.increment();
      long end = offset + length;
      Stream s = match(offset, length);
      if (s == null) {
        start(end);
        return List.of();
      }
      s.lastUsed = ++clock;
      boolean prefetching = s.prefetchedTo > s.prefetchFrom;
      if (prefetching && offset >= s.prefetchFrom && end <= s.prefetchedTo) {
        stats.hits.increment();
      } else if (s.advances >= settings.confirm()) {
        stats.misses.increment();
      }
      if (end > s.next) {
        consumed(overlap(Math.max(offset, s.next), end, s.prefetchFrom, s.prefetchedTo));
        s.next = end;
        s.advances++;
        if (s.advances >= settings.confirm()) {
          s.window = s.window == 0 ? firstWindow() : Math.min(bound(), s.window * 2);
        }
      }
      return issue(s);
    } finally {
      lock.unlock();
    }
  }

  /** Forgets a prefetch that was never sent (its connection closed first). */
  void cancelled(Prefetch prefetch) {
    lock.lock();
    try {
      inFlight.remove(prefetch);
      prefetch.done().complete(null);
    } finally {
      lock.unlock();
    }
  }

  /** Accounts a finished prefetch and returns what the stream may issue next (if wanted). */
  List<Prefetch> completed(Prefetch prefetch, long durationNanos, boolean succeeded, boolean wantMore) {
    lock.lock();
    try {
      inFlight.remove(prefetch);
      prefetch.done().complete(null);
      if (succeeded) {
        estimator.sample(prefetch.length(), durationNanos, System.nanoTime());
      } else {
        stats.errors.increment();
      }
      return wantMore && !prefetch.stream().retired ? issue(prefetch.stream()) : List.of();
    } finally {
      lock.unlock();
    }
  }

  /**
   * The prefetches in flight that overlap a read. The reader waits for them rather than read the
   * same bytes below a second time: the prefetch may not even have reached the cache yet.
   */
  List<CompletableFuture<Void>> overlapping(long offset, long length) {
    lock.lock();
    try {
      List<CompletableFuture<Void>> found = new ArrayList<>();
      for (Prefetch p : inFlight) {
        if (p.overlaps(offset, offset + length)) {
          found.add(p.done());
        }
      }
      return found;
    } finally {
      lock.unlock();
    }
  }

  /** Counts what every stream prefetched and never used; at unload. */
  void retireAll() {
    lock.lock();
    try {
      streams.forEach(this::retire);
      streams.clear();
    } finally {
      lock.unlock();
    }
  }

  /** The current window of the stream whose high-water mark is {@code next}; for tests. */
  long windowAt(long next) {
    lock.lock();
    try {
      return streams.stream().filter(s -> s.next == next).mapToLong(s -> s.window).findFirst().orElse(-1);
    } finally {
      lock.unlock();
    }
  }

  long allowance() {
    lock.lock();
    try {
      return allowance;
    } finally {
      lock.unlock();
    }
  }

  private Stream match(long offset, long length) {
    long tolerance = Math.max(MIN_TOLERANCE, TOLERANCE_READS * length);
    Stream best = null;
    long bestDistance = Long.MAX_VALUE;
    for (Stream s : streams) {
      long distance = Math.abs(offset - s.next);
      if (distance <= tolerance && distance < bestDistance) {
        best = s;
        bestDistance = distance;
      }
    }
    return best;
  }

  private void start(long next) {
    if (streams.size() >= settings.streams()) {
      Stream oldest = streams.get(0);
      for (Stream s : streams) {
        if (s.lastUsed < oldest.lastUsed) {
          oldest = s;
        }
      }
      retire(oldest);
      streams.remove(oldest);
    }
    Stream s = new Stream(next);
    s.lastUsed = ++clock;
    streams.add(s);
  }

  private void retire(Stream s) {
    s.retired = true;
    wasted(s.prefetchedTo - Math.max(s.next, s.prefetchFrom));
  }

  private void wasted(long bytes) {
    if (bytes > 0) {
      stats.unusedBytes.add(bytes);
      allowance = Math.max(settings.window(), allowance / 2);
      consumedSinceWaste = 0;
    }
  }

  private void consumed(long bytes) {
    consumedSinceWaste += bytes;
    if (consumedSinceWaste >= allowance && allowance < settings.maxWindow()) {
      allowance = Math.min(settings.maxWindow(), allowance * 2);
      consumedSinceWaste = 0;
    }
  }

  /** Notes how long a client read took below this filter (a miss pays the layer's round trip). */
  void readTook(long nanos) {
    lock.lock();
    try {
      lastReadNanos = nanos;
    } finally {
      lock.unlock();
    }
  }

  /**
   * A new stream's window. Doubling it with each advancing read costs a round trip per doubling
   * when the reader waits on the prefetches, so over a slow layer (the reads that made the stream
   * took a remote origin's round trip) it starts at the bound: a serial reader 50 ms from the
   * origin behind a 200 MiB/s link took 2.09 s with a 1 MiB start, 1.73 s with 16 MiB (the
   * link's own limit: 1.28 s). Over a local disk it starts small, as a short run of sequential
   * reads should not cost a large prefetch.
   */
  private long firstWindow() {
    return lastReadNanos >= SLOW_READ_NANOS ? bound() : Math.min(settings.window(), bound());
  }

  /** The largest window allowed now for one stream. */
  private long bound() {
    // The delivery rate is measured at the current window, so it cannot show what a larger one
    // would deliver: with a floor of two chunks a serial reader settled at two fetches in flight
    // (2 x 4M per ~30 ms round trip at 20 ms delay) and waited on the origin for a quarter of
    // its time. Half the in-flight limit is the floor; the measurement only raises it.
    long floor = Math.max(2, settings.maxInFlight() / 2) * settings.chunk();
    long measured = Math.max(floor, 2 * estimator.bandwidthDelayProduct());
    long shared = Math.min(settings.maxWindow(), allowance) / activeStreams();
    return Math.max(settings.window(), Math.min(shared, measured));
  }

  /**
   * Confirmed streams read from recently. They share the window budget: the cache below must
   * hold every stream's prefetched bytes until they are read.
   */
  private int activeStreams() {
    int active = 0;
    for (Stream s : streams) {
      if (s.advances >= settings.confirm() && s.lastUsed >= clock - ACTIVE_READS) {
        active++;
      }
    }
    return Math.max(1, active);
  }

  private List<Prefetch> issue(Stream s) {
    if (s.advances < settings.confirm() || s.window == 0) {
      return List.of();
    }
    if (s.prefetchedTo < s.next) {
      // The reader overtook the prefetches (or never had any): start again where it is.
      s.prefetchFrom = s.next;
      s.prefetchedTo = s.next;
    }
    long target = Math.min(size, s.next + s.window);
    long piece = Math.min(settings.chunk(), s.window);
    List<Prefetch> due = new ArrayList<>();
    while (inFlight.size() < settings.maxInFlight()) {
      long length = Math.min(piece, target - s.prefetchedTo);
      // Wait for a full piece unless the export ends first: few large requests beat many small.
      if (length <= 0 || (length < piece && target < size)) {
        break;
      }
      Prefetch prefetch = new Prefetch(s, s.prefetchedTo, length);
      due.add(prefetch);
      inFlight.add(prefetch);
      s.prefetchedTo += length;
      stats.prefetches.increment();
      stats.prefetchedBytes.add(length);
    }
    return due;
  }

  private static long overlap(long from, long to, long rangeFrom, long rangeTo) {
    return Math.max(0, Math.min(to, rangeTo) - Math.max(from, rangeFrom));
  }
}
