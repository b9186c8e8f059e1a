package io.jnbd.server;

import io.jnbd.api.Client;
import io.jnbd.api.Errno;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Request;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.util.DirectBufferPool;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection: the handshake, then the transmission loop. One thread reads and checks
 * requests (reading WRITE payloads off the wire); each valid request then runs on a virtual
 * thread of its own, at most {@link ServerConfig#maxRequestsPerConnection()} at once and within
 * the connection's share of the server's {@link MemoryBudget}, which the reader takes for a
 * request before it reads the payload. A client that sends faster than the export answers, or
 * than it reads its replies, is therefore slowed by TCP, not by the server's memory. A request
 * to a quick export may run on the reader instead (see {@link #runsOnTheReader}). Replies go out
 * in completion order.
 *
 * <p>Whatever a request throws, {@link OutOfMemoryError} included, it is answered with an error
 * and gives back what it held; the connection goes on. Such failures come in floods (an export
 * that has lost its backing store, a heap that is full), so only a connection's first is logged
 * in full.
 */
final class Connection {
  private static final Logger log = LoggerFactory.getLogger(Connection.class);
  /**
   * How quick the export must lately have been for the reader to run a request itself, rather
   * than hand it to a new thread ({@link #runsOnTheReader}). A serial client then pays no thread
   * hand-off per request, while a client with more to send waits at most about this long before
   * its next request is read.
   */
  static final long INLINE_LIMIT_NANOS = 500_000;
  /** How many times the inline limit the slowest recent request may have taken ({@link #runsOnTheReader}). */
  private static final long PEAK_FACTOR = 4;

  private final Wire wire;
  private final Stack stack;
  /** -v traces every request unless -D nbdkit.backend.datapath=0 says not to. */
  private final boolean traceRequests;
  private final ServerConfig config;
  private final DirectBufferPool pool;
  private final MemoryBudget.Account memory;
  private final Lock allRequestsLock;
  private final String peer;
  private final Client client;
  private final TlsPolicy tls;
  /** {@link #INLINE_LIMIT_NANOS}, unless a test fixes the rule's outcome. */
  private final long inlineLimitNanos;
  private volatile boolean stopping;
  private volatile boolean handshakeDone;
  /**
   * A reply could not be written: the client has gone, and requests still queued are dropped.
   * The end of its input alone says less: a client may shut down its sending side and still read.
   */
  private volatile boolean clientGone;
  /** A moving average of how long requests take; negative until one has been timed. */
  private volatile long recentServiceNanos = -1;
  /**
   * The slowest recent request: each new one replaces it when slower, and else it falls by a
   * sixteenth, so that a request ten times over the inline limit is forgotten after ~36 more and
   * one a hundred times over after ~71. Updated by request threads without a lock, as the average.
   */
  private volatile long recentPeakNanos;
  private final AtomicInteger unexpectedFailures = new AtomicInteger();

  Connection(Wire wire, Stack stack, ServerConfig config, DirectBufferPool pool, MemoryBudget memoryBudget,
      Lock allRequestsLock, String peer, Client client, TlsPolicy tls, long inlineLimitNanos) {
    this.wire = wire;
    this.stack = stack;
    this.traceRequests = config.verbose() && stack.debugFlags().datapath();
    this.config = config;
    this.pool = pool;
    this.memory = memoryBudget.openAccount();
    this.allRequestsLock = allRequestsLock;
    this.peer = peer;
    this.client = client;
    this.tls = tls;
    this.inlineLimitNanos = inlineLimitNanos;
  }

  /** Serves the client until it disconnects, breaks the protocol, or {@link #stop} is called. */
  void serve() {
    try (wire) {
      Negotiation.Result negotiated = new Negotiation(wire, stack, config, peer, client, tls).run();
      handshakeDone = true;
      if (negotiated == null) {
        return;
      }
      try (ServedExport export = negotiated.export()) {
        if (config.verbose()) {
          log.debug("{}: serving '{}' size={} flags=0x{}", peer, export.name, export.size,
              Integer.toHexString(export.transmissionFlags(negotiated.structuredReplies())));
        }
        boolean disconnected;
        try {
          disconnected = transmit(export, negotiated);
        } catch (EOFException e) {
          if (!stopping) {
            throw e;
          }
          // stop() cut the reader off; the client is still there and has had its replies.
          disconnected = false;
        }
        if ((disconnected || stopping) && !clientGone) {
          wire.sendCloseNotify();
        }
      }
    } catch (EOFException e) {
      log.debug("{}: client disconnected", peer);
    } catch (IOException e) {
      if (!stopping) {
        log.info("{}: connection closed: {}", peer, e.getMessage());
      }
    } catch (RuntimeException | Error e) {
      log.warn("{}: connection failed", peer, e);
    } finally {
      int failures = unexpectedFailures.get();
      if (failures > 1) {
        log.info("{}: {} unexpected failures in all; the first is logged above", peer, failures);
      }
    }
  }

  /** Stops reading requests; in-flight ones still get their replies. */
  void stop() {
    stopping = true;
    wire.shutdownInput();
    // The reader may be waiting for memory rather than for input.
    memory.close();
  }

  /** The handshake limit has passed: a client still negotiating is dropped. */
  void dropIfStillNegotiating() {
    if (!handshakeDone) {
      log.info("{}: dropped: the handshake did not finish within {} s", peer, config.handshakeLimit().toSeconds());
      stopping = true;
      wire.close();
    }
  }

  /**
   * Drops the connection if a reply to it has waited this long for the client to read: under
   * memory pressure, a client that takes none of its replies holds memory others need.
   */
  boolean dropIfRepliesStalled(long now, Duration limit) {
    if (wire.writeStalledFor(now) < limit.toNanos()) {
      return false;
    }
    log.warn("{}: dropped: a reply has waited {} s for the client to read it while other clients wait for memory",
        peer, limit.toSeconds());
    clientGone = true;
    stop();
    wire.close();
    return true;
  }

  /** Closes the socket, failing whatever is still being written or read. */
  void abort() {
    wire.close();
  }

  /** Serves requests until the client sends DISC (then returns true) or the connection ends otherwise. */
  private boolean transmit(ServedExport export, Negotiation.Result negotiated) throws IOException {
    ReplyWriter replies = new ReplyWriter(wire, negotiated.structuredReplies(), pool);
    int slots = Math.max(1, config.maxRequestsPerConnection());
    Semaphore requestSlots = new Semaphore(slots);
    Lock requestLock = switch (stack.threadModel()) {
      case PARALLEL -> null;
      case SERIALIZE_REQUESTS, SERIALIZE_CONNECTIONS -> new ReentrantLock();
      case SERIALIZE_ALL_REQUESTS -> allRequestsLock;
    };
    RequestThreads threads = new RequestThreads();
    ExecutorService workers = Executors.newThreadPerTaskExecutor(threads);
    ByteBuffer header = ByteBuffer.allocate(Nbd.REQUEST_SIZE);
    try {
      while (true) {
        wire.readFully(header.clear());
        Request request = Request.decode(header.flip());
        if (request == null) {
          log.info("{}: dropped: bad request magic", peer);
          return false;
        }
        if (request.type() == Cmd.DISC) {
          log.debug("{}: client sent DISC", peer);
          return true;
        }
        boolean write = request.type() == Cmd.WRITE;
        Validation.Rejection rejection = write && request.length() > export.maxPayload()
            ? new Validation.Rejection(Errno.EINVAL, "write of " + request.length() + " bytes is over the maximum of " + export.maxPayload())
            : Validation.check(request, export, negotiated);
        if (rejection != null) {
          if (write) {
            // Reading the payload off keeps the stream in step, so the client can go on.
            wire.skip(request.length());
          }
          reject(replies, request, rejection.errno(), rejection.message());
          continue;
        }
        boolean idle = requestSlots.availablePermits() == slots;
        requestSlots.acquireUninterruptibly();
        int bytes = export.bufferBytes(request);
        if (!memory.take(bytes)) {
          requestSlots.release();
          return false;
        }
        Runnable release = () -> {
          memory.give(bytes);
          requestSlots.release();
        };
        ByteBuffer payload;
        try {
          payload = write ? receivePayload(request) : null;
        } catch (OutOfMemoryError e) {
          release.run();
          fail(request, e, replies);
          continue;
        } catch (Throwable e) {
          release.run();
          throw e;
        }
        Runnable run = () -> {
          try {
            process(request, payload, export, replies, requestLock);
          } finally {
            pool.give(payload);
            release.run();
          }
        };
        if (runsOnTheReader(idle)) {
          run.run();
        } else {
          threads.nextOnPlatform = idle && recentServiceNanos < 0;
          start(run, workers);
        }
      }
    } finally {
      workers.shutdown();
      awaitInFlight(workers);
      String sendFileSummary = replies.sendFileSummary();
      if (sendFileSummary != null) {
        log.debug("{}: {}", peer, sendFileSummary);
      }
    }
  }

  /**
   * Whether the reader runs the next request itself rather than hand it to a thread of its own:
   * only when the export has lately answered within {@link #INLINE_LIMIT_NANOS}. On a plain
   * connection, also only when nothing else is in flight ({@code idle}) and the client has sent
   * nothing more yet, so that requests sent together run together. On a TLS connection, whatever
   * else is waiting, as long as the slowest recent request ({@link #recentPeakNanos}) took less
   * than {@link #PEAK_FACTOR} times the limit: its replies are encrypted one at a time anyway, so
   * a thread of its own would win a waiting request only the export's own short time, and each
   * hand-off costs wake-ups on both sides (over a Unix socket, 1 GiB from memory by nbdcopy: ~3000
   * context switches instead of ~400, and 12-15% more server CPU). The average alone would let
   * an export that is mostly quick but now and then slow (a cache in front of a remote plugin)
   * have the requests waiting behind a slow one wait for it. Not the limit itself for the slowest:
   * a cold JVM's first requests and a garbage collection pause go over it, and the hand-offs
   * that followed cost 5-10% of the server's CPU in the read above.
   */
  private boolean runsOnTheReader(boolean idle) {
    long recent = recentServiceNanos;
    if (recent < 0 || recent >= inlineLimitNanos) {
      return false;
    }
    if (idle && !wire.hasBufferedInput()) {
      return true;
    }
    return wire.isTls() && recentPeakNanos / PEAK_FACTOR < inlineLimitNanos;
  }

  /**
   * Request threads are virtual, but for a request that arrives before the export has been
   * timed: that one gets a platform thread. A virtual thread's first socket write puts the
   * socket into non-blocking mode for good, and from then on every read by the connection's
   * reader costs an extra failed read and a poll; a connection whose export proves quick has
   * its reader run requests itself on a socket still in blocking mode.
   */
  private static final class RequestThreads implements ThreadFactory {
    private final ThreadFactory virtual = Thread.ofVirtual().name("nbd-request-", 0).factory();
    private final ThreadFactory platform = Thread.ofPlatform().daemon().name("nbd-request-first").factory();
    /** Set by the reader, the only thread that starts requests, for the next request only. */
    boolean nextOnPlatform;

    @Override
    public Thread newThread(Runnable task) {
      ThreadFactory factory = nextOnPlatform ? platform : virtual;
      nextOnPlatform = false;
      return factory.newThread(task);
    }
  }

  /**
   * A WRITE's payload, read into a pool buffer. When there is no memory for the buffer, the
   * payload is read off and dropped, which keeps the stream in step, and the error thrown.
   */
  private ByteBuffer receivePayload(Request request) throws IOException {
    ByteBuffer payload;
    try {
      payload = pool.take((int) request.length());
    } catch (OutOfMemoryError e) {
      wire.skip(request.length());
      throw e;
    }
    try {
      wire.readFully(payload);
    } catch (IOException | RuntimeException e) {
      // The client went away mid-payload: the buffer would otherwise never go back.
      pool.give(payload);
      throw e;
    }
    return payload.flip();
  }

  private void start(Runnable request, ExecutorService workers) {
    try {
      workers.execute(request);
    } catch (RuntimeException | Error e) {
      // No thread to be had, out of memory most likely: the reader runs the request itself
      // rather than leave it unanswered.
      noteUnexpected("cannot start a request thread", e);
      request.run();
    }
  }

  private void awaitInFlight(ExecutorService workers) {
    try {
      if (!workers.awaitTermination(config.shutdownGrace().toMillis(), TimeUnit.MILLISECONDS)) {
        log.warn("{}: requests still running after {}; interrupting them", peer, config.shutdownGrace());
        workers.shutdownNow();
        workers.awaitTermination(1, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      workers.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private void reject(ReplyWriter replies, Request request, Errno errno, String problem) throws IOException {
    log.debug("{}: {} rejected: {}", peer, request, problem);
    replies.error(request.cookie(), errno, problem);
  }

  /** Runs a request and answers it, whatever it throws. */
  private void process(Request request, ByteBuffer payload, ServedExport export, ReplyWriter replies, Lock requestLock) {
    long started = System.nanoTime();
    Outcome outcome;
    try {
      if (requestLock != null) {
        requestLock.lock();
      }
      try {
        if (clientGone) {
          // Nobody will read the reply: a request that waited (for the thread model's lock,
          // say) while its client went away would only fetch data for nothing.
          return;
        }
        outcome = execute(request, payload, export);
      } finally {
        if (requestLock != null) {
          requestLock.unlock();
        }
      }
    } catch (Throwable failure) {
      fail(request, failure, replies);
      return;
    }
    try {
      // Replying outside the lock: a client that is slow to read its replies must not hold up
      // the requests the thread model serializes with this one, on other connections too.
      long serviceNanos;
      if (!(outcome.handedOver() instanceof ReadData.FileRegion)) {
        // The time the reply takes (encrypting it, waiting for the client to make room) is not
        // the export's: over TLS, it would make every export look slow.
        serviceNanos = noteServiceTime(started);
        reply(request, outcome, replies);
      } else {
        // A file region is read while its reply is written (sendfile reads the file then): a
        // file that is slow to read must not look quick enough to run on the reader.
        reply(request, outcome, replies);
        serviceNanos = noteServiceTime(started);
      }
      if (traceRequests) {
        log.debug("{}: {} ok in {} us", peer, request, serviceNanos / 1000);
      }
    } catch (IOException e) {
      // The client has gone; its reader finds out too and ends the connection.
      clientGone = true;
      log.debug("{}: cannot send the reply to {}: {}", peer, request, e.getMessage());
    } catch (RuntimeException | Error e) {
      // Most likely raised while the reply was put together (a large BLOCK_STATUS), before any
      // of it went out.
      fail(request, e, replies);
    } finally {
      pool.give(outcome.data());
      if (outcome.handedOver() != null) {
        outcome.handedOver().close();
      }
    }
  }

  /**
   * Adds the time since {@code started} to the moving average that decides whether requests run
   * on the reader, and returns it.
   */
  private long noteServiceTime(long started) {
    long serviceNanos = System.nanoTime() - started;
    long recent = recentServiceNanos;
    recentServiceNanos = recent < 0 ? serviceNanos : recent + (serviceNanos - recent) / 4;
    long peak = recentPeakNanos;
    recentPeakNanos = Math.max(serviceNanos, peak - peak / 16);
    return serviceNanos;
  }

  /** Answers a request that failed with an error reply. */
  private void fail(Request request, Throwable failure, ReplyWriter replies) {
    Errno errno = failure instanceof OutOfMemoryError ? Errno.ENOMEM : NbdException.errnoOf(failure);
    String message = failure instanceof NbdException ? failure.getMessage() : failure.toString();
    if (failure instanceof NbdException) {
      log.debug("{}: {} failed: {} {}", peer, request, errno, message);
    } else {
      noteUnexpected(request + " failed", failure);
    }
    try {
      replies.error(request.cookie(), errno, message);
    } catch (IOException e) {
      log.debug("{}: cannot send error reply: {}", peer, e.getMessage());
    } catch (RuntimeException | Error e) {
      // Better a client that sees the connection close than one that waits for this reply.
      noteUnexpected("cannot send an error reply; closing the connection", e);
      stop();
    }
  }

  /** Logs the connection's first unexpected failure in full, later ones at debug with a count. */
  private void noteUnexpected(String what, Throwable failure) {
    int count = unexpectedFailures.incrementAndGet();
    if (count > 1) {
      log.debug("{}: {}: {} (unexpected failure {} on this connection)", peer, what, failure, count);
    } else if (failure instanceof IOException) {
      log.warn("{}: {}: {}", peer, what, failure.toString());
    } else {
      // Not an I/O error but a bug or exhaustion somewhere: where it happened matters.
      log.warn("{}: {}: {}", peer, what, failure.toString(), failure);
    }
  }

  /**
   * What a request produced: READ data (a pool buffer, or what a layer handed over without a
   * copy), BLOCK_STATUS extents, or none of them.
   */
  private record Outcome(ByteBuffer data, ReadData handedOver, Extents extents) {
    static final Outcome DONE = new Outcome(null, null, null);
  }

  /** Runs one valid request against the export. */
  private Outcome execute(Request request, ByteBuffer payload, ServedExport export) throws IOException {
    long offset = request.offset();
    long length = request.length();
    boolean fua = request.has(CmdFlag.FUA);
    switch (request.type()) {
      case Cmd.READ -> {
        ReadData handedOver = length > 0 && wire.canWriteViews() ? export.readData(offset, (int) length) : null;
        if (handedOver instanceof ReadData.FileRegion region && !wire.canSendFile()) {
          try (handedOver) {
            return new Outcome(copyOf(region), null, null);
          }
        }
        if (handedOver != null) {
          return new Outcome(null, handedOver, null);
        }
        ByteBuffer data = pool.take((int) length);
        try {
          if (length > 0) {
            export.pread(data, offset);
          }
        } catch (Throwable failure) {
          pool.give(data);
          throw failure;
        }
        return new Outcome(data.flip(), null, null);
      }
      case Cmd.WRITE -> {
        if (length > 0) {
          export.pwrite(payload, offset, fua);
        }
      }
      case Cmd.FLUSH -> export.flush();
      case Cmd.TRIM -> {
        if (length > 0) {
          export.trim(offset, length, fua);
        }
      }
      case Cmd.WRITE_ZEROES -> {
        if (length > 0) {
          export.zero(offset, length, fua, !request.has(CmdFlag.NO_HOLE), request.has(CmdFlag.FAST_ZERO));
        }
      }
      case Cmd.CACHE -> {
        if (length > 0) {
          export.cache(offset, length, pool);
        }
      }
      case Cmd.BLOCK_STATUS -> {
        Extents extents = new Extents(offset, offset + length);
        export.extents(offset, length, request.has(CmdFlag.REQ_ONE), extents);
        if (request.has(CmdFlag.REQ_ONE) && extents.count() > 1) {
          Extents first = new Extents(offset, offset + extents.length(0));
          first.add(offset, extents.length(0), extents.type(0));
          extents = first;
        }
        return new Outcome(null, null, extents);
      }
      default -> throw new NbdException(Errno.EINVAL, "unknown command " + request.type());
    }
    return Outcome.DONE;
  }

  /** A file region read into a pool buffer, for a connection that cannot use sendfile (TLS). */
  private ByteBuffer copyOf(ReadData.FileRegion region) throws IOException {
    ByteBuffer data = pool.take(region.length());
    try {
      ReplyWriter.readRegion(region, data, 0);
    } catch (Throwable failure) {
      pool.give(data);
      throw failure;
    }
    return data.flip();
  }

  private void reply(Request request, Outcome outcome, ReplyWriter replies) throws IOException {
    if (outcome.handedOver() != null) {
      replies.readData(request, outcome.handedOver());
    } else if (outcome.data() != null) {
      replies.readData(request, outcome.data());
    } else if (outcome.extents() != null) {
      replies.blockStatus(request, Negotiation.BASE_ALLOCATION_ID, outcome.extents());
    } else {
      replies.ok(request.cookie());
    }
  }
}
