package io.jnbd.plugins.nbd;

import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import io.jnbd.plugins.nbd.Handshake.ExportInfo;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Request;
import io.jnbd.server.Wire;
import io.jnbd.server.tls.ClientTls;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One connection to an upstream NBD server in the transmission phase, shared by any number of
 * threads: each request is sent whole under a lock and parked under its cookie, and one reader
 * thread matches replies to requests by cookie, in whatever order the server answers. Reads land
 * directly in the caller's buffer.
 *
 * <p>When the connection breaks (the server closes it, or sends a reply that does not parse or
 * does not match a request), every request in flight and every later one fails with EIO: after
 * a malformed reply nothing later on the stream can be trusted. The connection is not reopened
 * here; the plugin opens a new one for the next client.
 */
final class NbdClient implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(NbdClient.class);
  /** The longest reply chunk payload taken for anything but read data (2^20 extents fit). */
  private static final int MAX_CHUNK_PAYLOAD = 16 << 20;
  private static final long CLOSE_WAIT_MILLIS = 5000;
  private static final Duration HANDSHAKE_LIMIT = Duration.ofSeconds(60);
  private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(64 * 1024);

  private final String upstream;
  private final SocketChannel channel;
  private final Wire wire;
  private final ExportInfo info;
  private final ReentrantLock sendLock = new ReentrantLock();
  private final Map<Long, Pending> inFlight = new ConcurrentHashMap<>();
  private final AtomicLong cookies = new AtomicLong();
  private final Thread reader;
  private volatile NbdException broken;
  /** Set once the reader has ended: from then on a request fails before it is sent. */
  private volatile boolean readerDone;
  private volatile boolean closing;

  private NbdClient(String upstream, SocketChannel channel, Wire wire, ExportInfo info) {
    this.upstream = upstream;
    this.channel = channel;
    this.wire = wire;
    this.info = info;
    this.reader = Thread.ofPlatform().daemon().name("nbd-upstream-reader " + upstream).unstarted(this::readReplies);
  }

  /** Connects, negotiates the upstream's export and starts reading replies. */
  static NbdClient connect(Upstream upstream, ClientTls tls) throws IOException {
    return connect(upstream, tls, HANDSHAKE_LIMIT);
  }

  /**
   * As {@link #connect(Upstream, ClientTls)}, giving up when the handshake takes longer than {@code limit}:
   * an upstream that accepts and then says nothing must not hold a client's connection (or the
   * server's start, with shared=true) for ever.
   */
  static NbdClient connect(Upstream upstream, ClientTls tls, Duration limit) throws IOException {
    SocketChannel channel = open(upstream);
    AtomicBoolean negotiating = new AtomicBoolean(true);
    CompletableFuture.delayedExecutor(limit.toMillis(), TimeUnit.MILLISECONDS).execute(() -> {
      if (negotiating.getAndSet(false)) {
        closeQuietly(channel);
      }
    });
    try {
      Wire wire = new Wire(channel, channel);
      ExportInfo info = Handshake.negotiate(wire, upstream, tls);
      if (!negotiating.getAndSet(false)) {
        throw new AsynchronousCloseException();
      }
      NbdClient client = new NbdClient(upstream.toString(), channel, wire, info);
      client.reader.start();
      return client;
    } catch (AsynchronousCloseException e) {
      throw new NbdException(Errno.EIO, "upstream " + upstream + " did not finish the handshake in "
          + limit.toMillis() + " ms", e);
    } catch (IOException | RuntimeException e) {
      negotiating.set(false);
      closeQuietly(channel);
      throw e;
    }
  }

  /** Asks the upstream server which exports it has. */
  static List<String> listExports(Upstream upstream, ClientTls tls) throws IOException {
    try (SocketChannel channel = open(upstream)) {
      return Handshake.listExports(new Wire(channel, channel), upstream, tls);
    }
  }

  private static void closeQuietly(SocketChannel channel) {
    try {
      channel.close();
    } catch (IOException ignored) {
      // Nothing more to release.
    }
  }

  private static SocketChannel open(Upstream upstream) throws IOException {
    try {
      return SocketChannel.open(upstream.address());
    } catch (IOException e) {
      throw new NbdException(Errno.EIO, "cannot connect to upstream " + upstream + ": " + e.getMessage(), e);
    }
  }

  ExportInfo info() {
    return info;
  }

  /** Whether the connection broke; every request on it now fails. */
  boolean isBroken() {
    return broken != null;
  }

  /** Reads {@code buffer.remaining()} bytes at offset into the buffer, leaving its position at its limit. */
  void read(ByteBuffer buffer, long offset) throws IOException {
    Pending pending = new Pending(Cmd.READ, offset, buffer.remaining(), buffer);
    send(pending, 0, null);
    buffer.position(buffer.limit());
  }

  void write(ByteBuffer buffer, long offset, int commandFlags) throws IOException {
    send(new Pending(Cmd.WRITE, offset, buffer.remaining(), null), commandFlags, buffer);
  }

  /** FLUSH, TRIM, WRITE_ZEROES and CACHE: commands with neither payload nor data in the reply. */
  void command(int type, long offset, long length, int commandFlags) throws IOException {
    send(new Pending(type, offset, length, null), commandFlags, null);
  }

  /**
   * BLOCK_STATUS for base:allocation; returns the extents as (length, status) pairs from
   * {@code offset}, contiguous, as the server sent them.
   */
  long[] blockStatus(long offset, long length, int commandFlags) throws IOException {
    Pending pending = new Pending(Cmd.BLOCK_STATUS, offset, length, null);
    send(pending, commandFlags, null);
    if (pending.extents == null) {
      throw new NbdException(Errno.EIO, "upstream " + upstream + " answered BLOCK_STATUS without extents");
    }
    return pending.extents;
  }

  private void send(Pending pending, int commandFlags, ByteBuffer payload) throws IOException {
    long cookie = cookies.incrementAndGet();
    inFlight.put(cookie, pending);
    if (readerDone && inFlight.remove(cookie) != null) {
      throw brokenError();
    }
    ByteBuffer header = ByteBuffer.allocate(Nbd.REQUEST_SIZE);
    new Request(commandFlags, pending.type, cookie, pending.offset, pending.length).encode(header);
    header.flip();
    sendLock.lock();
    try {
      if (payload == null) {
        wire.write(header);
      } else {
        wire.write(header, payload.duplicate());
      }
    } catch (IOException e) {
      // Part of a request may have gone out: the stream is no longer in step. The reader, which
      // may be filling a buffer, fails this request and the others once its read fails.
      breakConnection("could not be sent a request: " + e.getMessage());
    } finally {
      sendLock.unlock();
    }
    pending.await();
    if (pending.failure != null) {
      throw pending.failure;
    }
  }

  private NbdException brokenError() {
    NbdException cause = broken;
    return new NbdException(Errno.EIO, cause.getMessage(), cause);
  }

  /** The reader thread: one reply after another until the connection ends. */
  private void readReplies() {
    ByteBuffer magic = ByteBuffer.allocate(4);
    ByteBuffer simple = ByteBuffer.allocate(Nbd.SIMPLE_REPLY_SIZE - 4);
    ByteBuffer chunk = ByteBuffer.allocate(Nbd.CHUNK_HEADER_SIZE - 4);
    try {
      while (true) {
        wire.readFully(magic.clear());
        int value = magic.flip().getInt();
        if (value == Nbd.SIMPLE_REPLY_MAGIC) {
          wire.readFully(simple.clear());
          simple.flip();
          simpleReply(simple.getInt(), simple.getLong());
        } else if (value == Nbd.STRUCTURED_REPLY_MAGIC && info.structuredReplies()) {
          wire.readFully(chunk.clear());
          chunk.flip();
          int flags = Short.toUnsignedInt(chunk.getShort());
          int type = Short.toUnsignedInt(chunk.getShort());
          long cookie = chunk.getLong();
          long length = Integer.toUnsignedLong(chunk.getInt());
          structuredChunk(flags, type, cookie, length);
        } else {
          throw new ProtocolError("sent a reply with bad magic 0x" + Integer.toHexString(value));
        }
      }
    } catch (ProtocolError e) {
      breakConnection(e.getMessage());
    } catch (EOFException e) {
      breakConnection("closed the connection");
    } catch (IOException e) {
      breakConnection("connection failed: " + e.getMessage());
    } finally {
      failInFlight();
      readerDone = true;
      // A request registered while the flag was being set is failed here, or by its sender.
      failInFlight();
    }
  }

  private void simpleReply(int error, long cookie) throws IOException {
    Pending pending = expect(cookie);
    if (error == 0) {
      if (pending.type == Cmd.READ) {
        // A structured server must not answer a read this way, but the data is unambiguous.
        pending.receiveData(wire, pending.offset, pending.length);
      } else if (pending.type == Cmd.BLOCK_STATUS) {
        pending.fail(new NbdException(Errno.EIO, "upstream " + upstream + " answered BLOCK_STATUS with a simple reply"));
      }
    } else {
      pending.error(error, "");
    }
    finish(cookie, pending);
  }

  private void structuredChunk(int flags, int type, long cookie, long length) throws IOException {
    Pending pending = expect(cookie);
    switch (type) {
      case Chunk.NONE -> {
        if (length != 0) {
          throw new ProtocolError("sent a NONE chunk of " + length + " bytes");
        }
      }
      case Chunk.OFFSET_DATA -> {
        if (pending.type != Cmd.READ || length < 8) {
          throw new ProtocolError("sent a data chunk that does not fit its request (" + pending + ")");
        }
        long offset = readLong();
        pending.receiveData(wire, offset, length - 8);
      }
      case Chunk.OFFSET_HOLE -> {
        if (pending.type != Cmd.READ || length != 12) {
          throw new ProtocolError("sent a hole chunk that does not fit its request (" + pending + ")");
        }
        long offset = readLong();
        pending.receiveHole(offset, Integer.toUnsignedLong(readPayload(4).getInt()));
      }
      case Chunk.BLOCK_STATUS -> {
        if (pending.type != Cmd.BLOCK_STATUS || length < 12 || (length - 4) % 8 != 0 || length > MAX_CHUNK_PAYLOAD) {
          throw new ProtocolError("sent a block status chunk of " + length + " bytes for " + pending);
        }
        ByteBuffer payload = readPayload((int) length);
        long context = Integer.toUnsignedLong(payload.getInt());
        if (context != info.allocationContext() || pending.extents != null) {
          throw new ProtocolError("sent block status for a context not asked for (id " + context + ")");
        }
        long[] extents = new long[(payload.remaining() / 8) * 2];
        for (int i = 0; i < extents.length; i += 2) {
          extents[i] = Integer.toUnsignedLong(payload.getInt());
          extents[i + 1] = Integer.toUnsignedLong(payload.getInt());
          if (extents[i] == 0) {
            throw new ProtocolError("sent an empty extent");
          }
        }
        pending.extents = extents;
      }
      default -> {
        if (length > MAX_CHUNK_PAYLOAD) {
          throw new ProtocolError("sent a chunk of " + length + " bytes");
        }
        ByteBuffer payload = readPayload((int) length);
        if ((type & 0x8000) != 0) {
          if (length < 6 || Short.toUnsignedInt(payload.getShort(4)) > length - 6) {
            throw new ProtocolError("sent a malformed error chunk");
          }
          int error = payload.getInt();
          byte[] message = new byte[Short.toUnsignedInt(payload.getShort())];
          payload.get(message);
          pending.error(error, new String(message, StandardCharsets.UTF_8));
        }
        // Other unknown chunk types carry information this client did not ask for.
      }
    }
    if ((flags & Chunk.FLAG_DONE) != 0) {
      pending.checkComplete(upstream);
      finish(cookie, pending);
    }
  }

  private Pending expect(long cookie) throws ProtocolError {
    Pending pending = inFlight.get(cookie);
    if (pending == null) {
      throw new ProtocolError("replied to a request it was not sent (cookie " + cookie + ")");
    }
    return pending;
  }

  private void finish(long cookie, Pending pending) {
    if (inFlight.remove(cookie) != null) {
      pending.done.countDown();
    }
  }

  private long readLong() throws IOException {
    return readPayload(8).getLong();
  }

  private ByteBuffer readPayload(int length) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    wire.readFully(buffer);
    return buffer.flip();
  }

  /**
   * Marks the connection broken and closes the socket, which ends the reader; the reader then
   * fails the requests in flight. Only the reader completes them, so that no buffer is written
   * after its request returned.
   */
  private void breakConnection(String what) {
    synchronized (this) {
      if (broken == null) {
        broken = new NbdException(Errno.EIO, "upstream " + upstream + " " + what);
        if (!closing) {
          log.warn("{}", broken.getMessage());
        }
      }
    }
    try {
      channel.close();
    } catch (IOException ignored) {
      // Already unusable.
    }
  }

  private void failInFlight() {
    for (Long cookie : inFlight.keySet()) {
      Pending pending = inFlight.remove(cookie);
      if (pending != null) {
        pending.fail(brokenError());
        pending.done.countDown();
      }
    }
  }

  /** Sends NBD_CMD_DISC, closes the connection and waits for the reader to end. */
  @Override
  public void close() {
    closing = true;
    if (broken == null) {
      sendLock.lock();
      try {
        ByteBuffer disconnect = ByteBuffer.allocate(Nbd.REQUEST_SIZE);
        new Request(0, Cmd.DISC, cookies.incrementAndGet(), 0, 0).encode(disconnect);
        wire.write(disconnect.flip());
        channel.shutdownOutput();
      } catch (IOException ignored) {
        // The upstream is gone already; closing is all that is left.
      } finally {
        sendLock.unlock();
      }
    }
    try {
      // The server closes its end after DISC; the reader then sees the end of the stream.
      if (!reader.join(Duration.ofMillis(CLOSE_WAIT_MILLIS))) {
        breakConnection("did not close the connection after NBD_CMD_DISC");
      }
      reader.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      breakConnection("was disconnected");
    }
  }

  /**
   * The errno for an NBD error value. The protocol's own values map to themselves; an unknown
   * one counts as EINVAL, as the protocol tells clients to treat it, and 0 in an error reply
   * (which claims failure without saying which) as EIO.
   */
  static Errno errnoFromWire(int value) {
    return switch (value) {
      case 0 -> Errno.EIO;
      case 1 -> Errno.EPERM;
      case 5 -> Errno.EIO;
      case 12 -> Errno.ENOMEM;
      case 28 -> Errno.ENOSPC;
      case 75 -> Errno.EOVERFLOW;
      case 95 -> Errno.ENOTSUP;
      case 108 -> Errno.ESHUTDOWN;
      default -> Errno.EINVAL;
    };
  }

  /** A reply that breaks the protocol; the connection cannot go on after it. */
  private static final class ProtocolError extends IOException {
    private static final long serialVersionUID = 1L;

    ProtocolError(String message) {
      super(message);
    }
  }

  /** One request waiting for its reply. Touched by the reader until {@link #done} counts down. */
  private static final class Pending {
    final int type;
    final long offset;
    final long length;
    final ByteBuffer target;
    final int targetStart;
    final CountDownLatch done = new CountDownLatch(1);
    /** Read ranges received so far, start to end, to catch overlaps and gaps. */
    TreeMap<Long, Long> received;
    long receivedBytes;
    long[] extents;
    NbdException failure;

    Pending(int type, long offset, long length, ByteBuffer target) {
      this.type = type;
      this.offset = offset;
      this.length = length;
      this.target = target;
      this.targetStart = target == null ? 0 : target.position();
    }

    void await() {
      boolean interrupted = false;
      while (true) {
        try {
          done.await();
          break;
        } catch (InterruptedException e) {
          // The reply will come, or the connection will break: either way the buffer is ours
          // again only then.
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }

    void receiveData(Wire wire, long at, long count) throws IOException {
      claim(at, count);
      ByteBuffer into = target.duplicate();
      int from = targetStart + (int) (at - offset);
      into.limit(from + (int) count).position(from);
      wire.readFully(into);
    }

    void receiveHole(long at, long count) throws ProtocolError {
      claim(at, count);
      int from = targetStart + (int) (at - offset);
      int end = from + (int) count;
      while (from < end) {
        int n = Math.min(end - from, ZEROES.capacity());
        target.put(from, ZEROES, 0, n);
        from += n;
      }
    }

    private void claim(long at, long count) throws ProtocolError {
      if (at < offset || count > length || at - offset > length - count) {
        throw new ProtocolError("sent " + count + " bytes at " + at + " for " + this);
      }
      if (received == null) {
        received = new TreeMap<>();
      }
      Map.Entry<Long, Long> before = received.floorEntry(at);
      Long after = received.ceilingKey(at);
      if ((before != null && before.getValue() > at) || (after != null && after < at + count)) {
        throw new ProtocolError("sent overlapping data for " + this);
      }
      if (count > 0) {
        received.put(at, at + count);
        receivedBytes += count;
      }
    }

    /** On the last chunk of a successful read, every byte must have come. */
    void checkComplete(String upstream) {
      if (failure == null && type == Cmd.READ && receivedBytes != length) {
        failure = new NbdException(Errno.EIO, "upstream " + upstream + " sent " + receivedBytes
            + " of the " + length + " bytes of " + this);
      }
    }

    void error(int wireError, String message) {
      if (failure == null) {
        Errno errno = errnoFromWire(wireError);
        failure = new NbdException(errno, message.isEmpty() ? "upstream: " + errno : "upstream: " + message);
      }
    }

    void fail(NbdException e) {
      if (failure == null) {
        failure = e;
      }
    }

    @Override
    public String toString() {
      return Cmd.name(type) + " of " + length + " bytes at " + offset;
    }
  }
}
