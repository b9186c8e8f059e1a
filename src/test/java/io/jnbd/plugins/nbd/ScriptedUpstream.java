package io.jnbd.plugins.nbd;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.protocol.Replies;
import io.jnbd.protocol.Request;
import io.jnbd.server.Wire;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.List;

/**
 * A fake upstream NBD server whose replies a test writes byte by byte, to play a malformed or
 * dying server. The handshake is a correct one (fixed newstyle, structured replies,
 * base:allocation as context 1, GO with the export's size and flags) unless {@link Script#option}
 * answers an option itself; then each request is handed to {@link Script#request}, which writes
 * whatever it likes (or closes the connection). Serves connections one after another.
 */
final class ScriptedUpstream implements AutoCloseable {
  static final int CONTEXT_ID = 1;

  interface Script {
    /** Answers an option itself and returns true, or returns false for the standard answer. */
    default boolean option(int option, Wire wire) throws IOException {
      return false;
    }

    /** Answers one request (any bytes at all); a WRITE's payload has been read already. */
    void request(Request request, Wire wire) throws IOException;
  }

  private final Path directory;
  private final Path socket;
  private final ServerSocketChannel listener;
  private final Thread acceptor;
  private final long size;
  private final int transmissionFlags;
  private final Script script;
  final List<Request> received = new CopyOnWriteArrayList<>();

  ScriptedUpstream(long size, int transmissionFlags, Script script) throws IOException {
    this.size = size;
    this.transmissionFlags = transmissionFlags;
    this.script = script;
    directory = Files.createTempDirectory("jnbd-scripted");
    socket = directory.resolve("upstream.sock");
    listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    listener.bind(UnixDomainSocketAddress.of(socket));
    acceptor = Thread.ofPlatform().daemon().name("scripted-upstream").start(this::serve);
  }

  Path socket() {
    return socket;
  }

  private void serve() {
    while (listener.isOpen()) {
      try (SocketChannel channel = listener.accept(); Wire wire = new Wire(channel, channel)) {
        if (handshake(wire)) {
          transmission(wire);
        }
      } catch (IOException e) {
        // The client went away, or the script closed the connection: wait for the next one.
      }
    }
  }

  private boolean handshake(Wire wire) throws IOException {
    ByteBuffer greeting = ByteBuffer.allocate(18);
    greeting.putLong(Nbd.NBDMAGIC).putLong(Nbd.IHAVEOPT).putShort((short) (Nbd.HandshakeFlag.FIXED_NEWSTYLE | Nbd.HandshakeFlag.NO_ZEROES));
    wire.write(greeting.flip());
    wire.readFully(ByteBuffer.allocate(4));
    while (true) {
      ByteBuffer header = ByteBuffer.allocate(Nbd.OPTION_HEADER_SIZE);
      wire.readFully(header);
      header.flip().getLong();
      int option = header.getInt();
      ByteBuffer data = ByteBuffer.allocate(header.getInt());
      wire.readFully(data);
      if (script.option(option, wire)) {
        if (option == Opt.ABORT) {
          return false;
        }
        continue;
      }
      switch (option) {
        case Opt.STRUCTURED_REPLY -> wire.write(Replies.optionReply(option, Rep.ACK, new byte[0]));
        case Opt.SET_META_CONTEXT -> {
          wire.write(Replies.metaContext(option, CONTEXT_ID, Nbd.BASE_ALLOCATION));
          wire.write(Replies.optionReply(option, Rep.ACK, new byte[0]));
        }
        case Opt.GO -> {
          wire.write(Replies.infoExport(option, size, transmissionFlags));
          wire.write(Replies.optionReply(option, Rep.ACK, new byte[0]));
          return true;
        }
        case Opt.EXPORT_NAME -> {
          wire.write(Replies.exportNameReply(size, transmissionFlags, true));
          return true;
        }
        case Opt.ABORT -> {
          wire.write(Replies.optionReply(option, Rep.ACK, new byte[0]));
          return false;
        }
        default -> wire.write(Replies.optionError(option, Rep.ERR_UNSUP, "not scripted"));
      }
    }
  }

  private void transmission(Wire wire) throws IOException {
    ByteBuffer header = ByteBuffer.allocate(Nbd.REQUEST_SIZE);
    while (true) {
      wire.readFully(header.clear());
      Request request = Request.decode(header.flip());
      received.add(request);
      if (request.type() == Nbd.Cmd.DISC) {
        return;
      }
      if (request.type() == Nbd.Cmd.WRITE) {
        wire.skip(request.length());
      }
      script.request(request, wire);
    }
  }

  /** A structured chunk header followed by its payload. */
  static ByteBuffer chunk(int flags, int type, long cookie, ByteBuffer payload) {
    ByteBuffer out = ByteBuffer.allocate(Nbd.CHUNK_HEADER_SIZE + payload.remaining());
    Replies.chunkHeader(out, flags, type, cookie, payload.remaining());
    return out.put(payload).flip();
  }

  /** A simple reply with no data. */
  static ByteBuffer simple(int error, long cookie) {
    ByteBuffer out = ByteBuffer.allocate(Nbd.SIMPLE_REPLY_SIZE);
    Replies.simpleReply(out, error, cookie);
    return out.flip();
  }

  @Override
  public void close() throws IOException {
    listener.close();
    try {
      acceptor.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    Files.deleteIfExists(socket);
    Files.deleteIfExists(directory);
  }
}
