package io.jnbd.server;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Request;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** A byte-level NBD client for tests that need to send what real clients never would. */
final class RawClient implements AutoCloseable {
  private final SocketChannel channel;

  RawClient(Path socket) throws IOException {
    channel = SocketChannel.open(StandardProtocolFamily.UNIX);
    channel.connect(UnixDomainSocketAddress.of(socket));
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
    ByteBuffer header = read(Nbd.CHUNK_HEADER_SIZE);
    if (header.getInt() != Nbd.STRUCTURED_REPLY_MAGIC) {
      throw new IOException("bad chunk magic");
    }
    header.getShort();
    int type = Short.toUnsignedInt(header.getShort());
    long cookie = header.getLong();
    int length = header.getInt();
    ByteBuffer payload = read(length);
    long error = type >= Nbd.Chunk.ERROR ? payload.getInt() : 0;
    return new long[] {type, cookie, error};
  }

  void send(ByteBuffer... buffers) throws IOException {
    for (ByteBuffer buffer : buffers) {
      while (buffer.hasRemaining()) {
        channel.write(buffer);
      }
    }
  }

  ByteBuffer read(int n) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(n);
    while (buffer.hasRemaining()) {
      if (channel.read(buffer) < 0) {
        throw new EOFException("server closed the connection");
      }
    }
    return buffer.flip();
  }

  /** True when the server has closed its end (reads return end of stream). */
  boolean closedByServer() throws IOException {
    ByteBuffer one = ByteBuffer.allocate(1);
    try {
      return channel.read(one) < 0;
    } catch (IOException e) {
      return true;
    }
  }

  static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }
}
