package io.jnbd.server;

import io.jnbd.api.Errno;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Request;
import io.jnbd.util.DirectBufferPool;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection: the handshake, then the transmission loop. One thread reads and checks
 * requests (reading WRITE payloads off the wire); each valid request then runs on a virtual
 * thread of its own, at most {@link ServerConfig#maxRequestsPerConnection()} at once and within
 * a byte budget, so a client that sends faster than the export answers is slowed by TCP, not by
 * the server's memory. A request that arrives alone at a quick export runs on the reader
 * instead (see {@link #INLINE_LIMIT_NANOS}). Replies go out in completion order.
 */
final class Connection {
  private static final Logger log = LoggerFactory.getLogger(Connection.class);
  /** Payload bytes one connection may have in flight; a 32 MiB request always fits. */
  private static final int BYTE_BUDGET = 64 << 20;
  /**
   * The reader runs a request itself, rather than handing it to a new thread, when nothing else
   * is in flight, the client has sent nothing more yet, and the export has lately answered within
   * this time. A serial client then pays no thread hand-off per request, while a client with more
   * to send waits at most about this long before its next request is read.
   */
  private static final long INLINE_LIMIT_NANOS = 500_000;

  private final Wire wire;
  private final Stack stack;
  private final ServerConfig config;
  private final DirectBufferPool pool;
  private final Lock allRequestsLock;
  private final String peer;
  private volatile boolean stopping;
  /** A moving average of how long requests take; negative until one has been timed. */
  private volatile long recentServiceNanos = -1;

  Connection(Wire wire, Stack stack, ServerConfig config, DirectBufferPool pool, Lock allRequestsLock, String peer) {
    this.wire = wire;
    this.stack = stack;
    this.config = config;
    this.pool = pool;
    this.allRequestsLock = allRequestsLock;
    this.peer = peer;
  }

  /** Serves the client until it disconnects, breaks the protocol, or {@link #stop} is called. */
  void serve() {
    try (wire) {
      Negotiation.Result negotiated = new Negotiation(wire, stack, config, peer).run();
      if (negotiated == null) {
        return;
      }
      try (ServedExport export = negotiated.export()) {
        if (config.verbose()) {
          log.debug("{}: serving '{}' size={} flags=0x{}", peer, export.name, export.size,
              Integer.toHexString(export.transmissionFlags(negotiated.structuredReplies())));
        }
        transmit(export, negotiated);
      }
    } catch (EOFException e) {
      log.debug("{}: client disconnected", peer);
    } catch (IOException e) {
      if (!stopping) {
        log.info("{}: connection closed: {}", peer, e.getMessage());
      }
    } catch (RuntimeException e) {
      log.warn("{}: connection failed", peer, e);
    }
  }

  /** Stops reading requests; in-flight ones still get their replies. */
  void stop() {
    stopping = true;
    wire.shutdownInput();
  }

  private void transmit(ServedExport export, Negotiation.Result negotiated) throws IOException {
    ReplyWriter replies = new ReplyWriter(wire, negotiated.structuredReplies());
    int slots = Math.max(1, config.maxRequestsPerConnection());
    Semaphore requestSlots = new Semaphore(slots);
    Semaphore byteBudget = new Semaphore(BYTE_BUDGET);
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
          return;
        }
        if (request.type() == Cmd.DISC) {
          log.debug("{}: client sent DISC", peer);
          return;
        }
        ByteBuffer payload = null;
        if (request.type() == Cmd.WRITE) {
          if (request.length() > export.maxPayload()) {
            // Reading the payload off keeps the stream in step, so the client can go on.
            wire.skip(request.length());
            reject(replies, request, Errno.EINVAL, "write of " + request.length() + " bytes is over the maximum of " + export.maxPayload());
            continue;
          }
          payload = pool.take((int) request.length());
          wire.readFully(payload);
          payload.flip();
        }
        Validation.Rejection rejection = Validation.check(request, export, negotiated);
        if (rejection != null) {
          pool.give(payload);
          reject(replies, request, rejection.errno(), rejection.message());
          continue;
        }
        int cost = (int) Math.min(request.length(), export.maxPayload());
        boolean dataCommand = request.type() == Cmd.READ || request.type() == Cmd.WRITE;
        boolean idle = requestSlots.availablePermits() == slots;
        requestSlots.acquireUninterruptibly();
        if (dataCommand) {
          byteBudget.acquireUninterruptibly(cost);
        }
        ByteBuffer body = payload;
        Runnable run = () -> {
          try {
            process(request, body, export, replies, requestLock);
          } finally {
            pool.give(body);
            if (dataCommand) {
              byteBudget.release(cost);
            }
            requestSlots.release();
          }
        };
        long recent = recentServiceNanos;
        if (idle && recent < 0) {
          threads.nextOnPlatform = true;
          workers.execute(run);
        } else if (idle && recent < INLINE_LIMIT_NANOS && !wire.hasBufferedInput()) {
          run.run();
        } else {
          workers.execute(run);
        }
      }
    } finally {
      workers.shutdown();
      awaitInFlight(workers);
    }
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

  private void process(Request request, ByteBuffer payload, ServedExport export, ReplyWriter replies, Lock requestLock) {
    long started = System.nanoTime();
    Outcome outcome = null;
    try {
      if (requestLock != null) {
        requestLock.lock();
      }
      try {
        outcome = execute(request, payload, export);
      } finally {
        if (requestLock != null) {
          requestLock.unlock();
        }
      }
      long serviceNanos = System.nanoTime() - started;
      long recent = recentServiceNanos;
      recentServiceNanos = recent < 0 ? serviceNanos : recent + (serviceNanos - recent) / 4;
      // Replying outside the lock: a client that is slow to read its replies must not hold up
      // the requests the thread model serializes with this one, on other connections too.
      reply(request, outcome, replies);
      if (config.verbose()) {
        log.debug("{}: {} ok in {} us", peer, request, serviceNanos / 1000);
      }
    } catch (IOException | RuntimeException failure) {
      Errno errno = NbdException.errnoOf(failure);
      String message = failure instanceof NbdException ? failure.getMessage() : failure.toString();
      if (failure instanceof NbdException) {
        log.debug("{}: {} failed: {} {}", peer, request, errno, message);
      } else {
        log.warn("{}: {} failed: {}", peer, request, message);
      }
      try {
        replies.error(request.cookie(), errno, message);
      } catch (IOException e) {
        log.debug("{}: cannot send error reply: {}", peer, e.getMessage());
      }
    } finally {
      if (outcome != null) {
        pool.give(outcome.data());
      }
    }
  }

  /** What a request produced: READ data (a pool buffer), BLOCK_STATUS extents, or neither. */
  private record Outcome(ByteBuffer data, Extents extents) {
    static final Outcome DONE = new Outcome(null, null);
  }

  /** Runs one valid request against the export. */
  private Outcome execute(Request request, ByteBuffer payload, ServedExport export) throws IOException {
    long offset = request.offset();
    long length = request.length();
    boolean fua = request.has(CmdFlag.FUA);
    switch (request.type()) {
      case Cmd.READ -> {
        ByteBuffer data = pool.take((int) length);
        if (length > 0) {
          export.pread(data, offset);
        }
        return new Outcome(data.flip(), null);
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
        return new Outcome(null, extents);
      }
      default -> throw new NbdException(Errno.EINVAL, "unknown command " + request.type());
    }
    return Outcome.DONE;
  }

  private void reply(Request request, Outcome outcome, ReplyWriter replies) throws IOException {
    if (outcome.data() != null) {
      replies.readData(request, outcome.data());
    } else if (outcome.extents() != null) {
      replies.blockStatus(request, Negotiation.BASE_ALLOCATION_ID, outcome.extents());
    } else {
      replies.ok(request.cookie());
    }
  }
}
