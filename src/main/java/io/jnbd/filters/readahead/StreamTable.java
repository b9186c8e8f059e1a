package io.jnbd.filters.readahead;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;

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
 *       prefetches after {@code confirm} of them, so random and backwards reads never do. Over
 *       a slow layer a large read that continues the last one exactly counts twice ({@link
 *       #LARGE_READ}).
 *   <li><b>Window.</b> Starts at {@code window} and doubles with each advancing read, up to the
 *       smallest of: {@code max-window} shared by the streams read recently (the cache below
 *       must hold all their prefetched bytes); an allowance that halves whenever prefetched bytes go
 *       unused (left ahead of a stream that was abandoned) and doubles back as
 *       prefetched bytes are consumed; and twice the measured bandwidth-delay product of the
 *       layer below (at least {@code maxInFlight} chunks, and two), so the window stops growing
 *       once more bytes in flight no longer buy more throughput. Over a slow layer a new stream
 *       starts at that bound.
 *   <li><b>Issue.</b> Prefetches cover {@code [next, next + window)} in pieces of up to {@code
 *       chunk} bytes, with at most {@code maxInFlight} outstanding per export; a completed one
 *       issues the next, so the pipeline stays full between client reads. Over a slow layer
 *       they are spread over its round trip rather than sent at once (see {@link #sendTime}).
 * </ul>
 */
final class StreamTable implements AutoCloseable {
  private static final long MIN_TOLERANCE = 64 * 1024;
  private static final int TOLERANCE_READS = 16;
  /** A stream not read from in this many reads of the export no longer counts as active. */
  private static final int ACTIVE_READS = 256;

  /**
   * One prefetch to send below: {@code cache(offset, length)}, not before {@code sendAt} (the
   * table's clock); done when it finished.
   */
  record Prefetch(Stream stream, long offset, long length, long sendAt, CompletableFuture<Void> done) {
    Prefetch(Stream stream, long offset, long length, long sendAt) {
      this(stream, offset, length, sendAt, new CompletableFuture<>());
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
  /** A stream confirmed within this many reads of a slow one is over a slow layer. */
  private static final int SLOW_READ_MEMORY = 16;
  /**
   * Over a slow layer, a read at least this large that starts exactly where the stream's last
   * one ended counts as two advances: copying tools read 256K to 2M at a time, and each read
   * spent unconfirmed costs a round trip (60 ms of the 1.6 s that a serial reader takes 50 ms
   * from the origin behind a 200 MiB/s link). Small reads, random or not, still need every
   * advance.
   */
  static final long LARGE_READ = 256 * 1024;

  private final ReadaheadSettings settings;
  private final long size;
  private final LongSupplier nanoClock;
  private final ReentrantLock lock = new ReentrantLock();
  private final List<Stream> streams = new ArrayList<>();
  private final FetchEstimator estimator = new FetchEstimator();
  private final ReadaheadStats stats = new ReadaheadStats();
  private long clock;
  private final List<Prefetch> inFlight = new ArrayList<>();
  private long allowance;
  private long consumedSinceWaste;
  /** The read count ({@link #clock}) at the latest client read that took a slow layer's round trip. */
  private long lastSlowRead = -SLOW_READ_MEMORY - 1;
  /** How long that read took. */
  private long lastSlowReadNanos;
  /** The shortest prefetch of 2 ms or more so far: the layer's round trip; 0 until one is seen. */
  private long roundTripNanos;
  /** When the next prefetch may be sent, to spread a burst of them over one round trip. */
  private long nextSendAt = Long.MIN_VALUE;

  StreamTable(ReadaheadSettings settings, long size) {
    this(settings, size, System::nanoTime);
  }

  /** With {@code nanoClock} for {@link System#nanoTime()}, so that tests set the time. */
  StreamTable(ReadaheadSettings settings, long size, LongSupplier nanoClock) {
    this.settings = settings;
    this.size = size;
    this.nanoClock = nanoClock;
    this.allowance = settings.maxWindow();
  }

  /** The table's clock, in nanoseconds: when prefetches are sent is in its terms. */
  long now() {
    return nanoClock.getAsLong();
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
        s.advances += offset == s.next && length >= LARGE_READ && overSlowLayer() ? 2 : 1;
        s.next = end;
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
        estimator.sample(prefetch.length(), durationNanos, now());
        if (durationNanos >= SLOW_READ_NANOS && (roundTripNanos == 0 || durationNanos < roundTripNanos)) {
          roundTripNanos = durationNanos;
        }
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

  /** Counts what every stream prefetched and never used; at unload. Closing twice does nothing more. */
  @Override
  public void close() {
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
      if (nanos >= SLOW_READ_NANOS) {
        lastSlowRead = clock;
        lastSlowReadNanos = nanos;
      }
    } finally {
      lock.unlock();
    }
  }

  /**
   * A new stream's window. Doubling it with each advancing read costs a round trip per doubling
   * when the reader waits on the prefetches, so over a slow layer (one of the reads just before
   * took a remote origin's round trip) it starts at the bound: a serial reader 50 ms from the
   * origin behind a 200 MiB/s link took 2.09 s with a 1 MiB start, 1.73 s with 16 MiB (the
   * link's own limit: 1.28 s). Not only the latest read counts: the reads that confirm a stream
   * are often served by the cache below, which filled a larger block on the first one. Over a
   * local disk it starts small, as a short run of sequential reads should not cost a large
   * prefetch.
   */
  private long firstWindow() {
    return overSlowLayer() ? bound() : Math.min(settings.window(), bound());
  }

  /** Whether one of the last few client reads took a remote layer's round trip. */
  private boolean overSlowLayer() {
    return clock - lastSlowRead <= SLOW_READ_MEMORY;
  }

  /**
   * When a prefetch issued now may be sent. Prefetches sent together over one link share it and
   * finish together; a serial reader waits for the first of them, so the next batch is only
   * asked for once the whole one has arrived, and the link idles for the origin's round trip
   * between batches (50 ms of every 210 for eight 4M prefetches at 200 MiB/s). Spread over one
   * round trip, they finish one after another, each completion issues the next, and the link
   * stays busy. The round trip is the shortest prefetch of 2 ms or more; before one completes,
   * the slow read that made the stream. Not every client read: one served by the cache below
   * but slowed by a busy machine would pass for a very short round trip and undo the spacing
   * for good. Over a fast layer they go at once.
   */
  private long sendTime() {
    long now = now();
    long roundTrip = roundTripNanos != 0 ? roundTripNanos : overSlowLayer() ? lastSlowReadNanos : 0;
    if (roundTrip == 0) {
      return now;
    }
    long sendAt = Math.max(now, nextSendAt);
    nextSendAt = sendAt + roundTrip / settings.maxInFlight();
    return sendAt;
  }

  /** The largest window allowed now for one stream. */
  private long bound() {
    // The delivery rate is measured at the current window, so it cannot show what a larger one
    // would deliver: with a floor of two chunks a serial reader settled at two fetches in flight
    // (2 x 4M per ~30 ms round trip at 20 ms delay) and waited on the origin for a quarter of
    // its time; with half the in-flight limit (16M), one 50 ms from the origin behind a 200 MiB/s
    // link had a third less in flight than that link holds in a round trip plus the batch being
    // read. The floor is enough chunks to use every in-flight slot; the measurement only raises it.
    long floor = Math.max(2, settings.maxInFlight()) * settings.chunk();
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
      Prefetch prefetch = new Prefetch(s, s.prefetchedTo, length, sendTime());
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
