package io.jnbd.server;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Request;
import io.jnbd.server.tls.ClientTls;
import io.jnbd.server.tls.TlsChannel;
import io.jnbd.server.tls.TlsMode;
import java.io.EOFException;
import java.io.IOException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A byte-level NBD client for tests that need to send what real clients never would. Every read
 * and write gives up with a {@link SocketTimeoutException} after a time limit, so a server that
 * hangs fails the test rather than stalling it. Reading and sending may happen on two threads at
 * once (each waits on a selector of its own).
 */
final class RawClient implements AutoCloseable {
  /** Far longer than any working server needs; only a hang waits this long. */
  private static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);
  private static final int SEND_SLICE = 256 * 1024;

  private final SocketChannel channel;
  /** The connection once TLS is on: blocking, so its reads wait without this client's timeout. */
  private TlsChannel tls;
  private final Selector readable;
  private final Selector writable;
  private final long timeoutNanos;

  RawClient(Path socket) throws IOException {
    this(socket, DEFAULT_TIMEOUT);
  }

  RawClient(Path socket, Duration timeout) throws IOException {
    timeoutNanos = timeout.toNanos();
    channel = SocketChannel.open(StandardProtocolFamily.UNIX);
    try {
      channel.connect(UnixDomainSocketAddress.of(socket));
      channel.configureBlocking(false);
      readable = Selector.open();
      writable = Selector.open();
      channel.register(readable, SelectionKey.OP_READ);
      channel.register(writable, SelectionKey.OP_WRITE);
    } catch (IOException e) {
      close();
      throw e;
    }
  }

  /** Reads the greeting and answers with the given client flags. */
  RawClient greet(int clientFlags) throws IOException {
    ByteBuffer greeting = read(18);
    if (greeting.getLong() != Nbd.NBDMAGIC || greeting.getLong() != Nbd.IHAVEOPT) {
      throw new IOException("bad greeting");
    }
    send(ByteBuffer.allocate(4).putInt(clientFlags).flip());
    return this;
  }

  void option(int option, byte[] data) throws IOException {
    ByteBuffer header = ByteBuffer.allocate(16).putLong(Nbd.IHAVEOPT).putInt(option).putInt(data.length);
    send(header.flip(), ByteBuffer.wrap(data));
  }

  /** Sends an option header that announces more data than follows. */
  void optionHeader(int option, long announcedLength) throws IOException {
    send(ByteBuffer.allocate(16).putLong(Nbd.IHAVEOPT).putInt(option).putInt((int) announcedLength).flip());
  }

  /** Reads one option reply; returns its type, leaving the payload skipped. */
  int optionReplyType() throws IOException {
    ByteBuffer header = read(20);
    if (header.getLong() != Nbd.OPTION_REPLY_MAGIC) {
      throw new IOException("bad option reply magic");
    }
    header.getInt();
    int type = header.getInt();
    int length = header.getInt();
    read(length);
    return type;
  }

  /**
   * STARTTLS, then the client's side of the TLS handshake (trusting any certificate); from then
   * on every read and write goes through TLS.
   */
  RawClient startTls() throws IOException {
    option(Nbd.Opt.STARTTLS, new byte[0]);
    expect(Nbd.Rep.ACK);
    // A channel in blocking mode must be registered with no selector.
    channel.keyFor(readable).cancel();
    channel.keyFor(writable).cancel();
    readable.selectNow();
    writable.selectNow();
    channel.configureBlocking(true);
    tls = ClientTls.configure(TlsMode.REQUIRE, null, false, null, null)
        .handshake(channel, channel, ByteBuffer.allocate(0), null, 0);
    return this;
  }

  /** GO for the default export with structured replies; returns after the final ACK. */
  void goStructured() throws IOException {
    option(Nbd.Opt.STRUCTURED_REPLY, new byte[0]);
    expect(Nbd.Rep.ACK);
    go();
  }

  /** GO for the default export; returns after the final ACK. */
  void go() throws IOException {
    ByteBuffer go = ByteBuffer.allocate(6).putInt(0).putShort((short) 0);
    option(Nbd.Opt.GO, go.array());
    int type;
    do {
      type = optionReplyType();
    } while (type == Nbd.Rep.INFO);
    if (type != Nbd.Rep.ACK) {
      throw new IOException("GO failed: 0x" + Integer.toHexString(type));
    }
  }

  void expect(int replyType) throws IOException {
    int type = optionReplyType();
    if (type != replyType) {
      throw new IOException("expected reply 0x" + Integer.toHexString(replyType) + ", got 0x" + Integer.toHexString(type));
    }
  }

  void request(int flags, int type, long cookie, long offset, long length) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(Nbd.REQUEST_SIZE);
    new Request(flags, type, cookie, offset, length).encode(buffer);
    send(buffer.flip());
  }

  /** Reads one structured chunk; returns {type, cookie-low-32, error-or-0}. */
  long[] chunk() throws IOException {
    ChunkHeader header = chunkHeader();
    ByteBuffer payload = read(header.length());
    long error = header.type() >= Nbd.Chunk.ERROR ? payload.getInt() : 0;
    return new long[] {header.type(), header.cookie(), error};
  }

  /** Reads one structured chunk, which must be the data of a READ; returns the data. */
  ByteBuffer data(long cookie) throws IOException {
    ChunkHeader header = chunkHeader();
    if (header.type() != Nbd.Chunk.OFFSET_DATA || header.cookie() != cookie) {
      throw new IOException("expected data for " + cookie + ", got chunk type " + header.type() + " for " + header.cookie());
    }
    read(8); // the offset
    return read(header.length() - 8);
  }

  private record ChunkHeader(int type, long cookie, int length) {}

  private ChunkHeader chunkHeader() throws IOException {
    ByteBuffer header = read(Nbd.CHUNK_HEADER_SIZE);
    if (header.getInt() != Nbd.STRUCTURED_REPLY_MAGIC) {
      throw new IOException("bad chunk magic");
    }
    header.getShort();
    int type = Short.toUnsignedInt(header.getShort());
    return new ChunkHeader(type, header.getLong(), header.getInt());
  }

  void send(ByteBuffer... buffers) throws IOException {
    long deadline = System.nanoTime() + timeoutNanos;
    for (ByteBuffer buffer : buffers) {
      while (tls != null && buffer.hasRemaining()) {
        tls.write(buffer);
      }
      while (buffer.hasRemaining()) {
        // A heap buffer is copied whole into a temporary direct one on every write, however
        // little the socket then takes: slices keep sending megabytes linear in time.
        ByteBuffer slice = buffer.slice(buffer.position(), Math.min(buffer.remaining(), SEND_SLICE));
        int sent = channel.write(slice);
        buffer.position(buffer.position() + sent);
        if (sent == 0) {
          await(writable, deadline, "the server stopped reading");
        }
      }
    }
  }

  /** Ends the client's side of the stream, as a client that is done sending; replies still arrive. */
  void shutdownOutput() throws IOException {
    channel.shutdownOutput();
  }

  ByteBuffer read(int n) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(n);
    fill(buffer);
    return buffer.flip();
  }

  /**
   * Reads n bytes, or returns null when the server hangs up before the first of them. A reset
   * counts as hanging up: a peer that closes with bytes of ours unread resets the connection,
   * once what it sent before has been read.
   */
  ByteBuffer readOrEnd(int n) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(n);
    try {
      fill(buffer.limit(Math.min(n, 1)));
    } catch (EOFException | SocketException e) {
      return null;
    }
    fill(buffer.limit(n));
    return buffer.flip();
  }

  private void fill(ByteBuffer buffer) throws IOException {
    long deadline = System.nanoTime() + timeoutNanos;
    while (buffer.hasRemaining()) {
      int got = tls != null ? tls.read(buffer) : channel.read(buffer);
      if (got < 0) {
        throw new EOFException("server closed the connection");
      }
      if (got == 0) {
        await(readable, deadline, "no reply from the server");
      }
    }
  }

  /** True when the server has closed its end (reads return end of stream), false when it sent a byte. */
  boolean closedByServer() throws IOException {
    try {
      read(1);
      return false;
    } catch (SocketTimeoutException e) {
      throw e;
    } catch (IOException e) {
      return true;
    }
  }

  private void await(Selector selector, long deadline, String problem) throws IOException {
    long left = deadline - System.nanoTime();
    if (left <= 0 || selector.select(Math.max(1, left / 1_000_000)) == 0 && System.nanoTime() >= deadline) {
      throw new SocketTimeoutException(problem + " within " + Duration.ofNanos(timeoutNanos).toMillis() + " ms");
    }
    selector.selectedKeys().clear();
  }

  static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public void close() throws IOException {
    try (channel; Selector r = readable; Selector w = writable) {
      // Closes all three, also when the constructor failed half-way (nulls are skipped).
    }
  }
}
