package io.jnbd.plugins.nbd;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.ClientFlag;
import io.jnbd.protocol.Nbd.HandshakeFlag;
import io.jnbd.protocol.Nbd.Info;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.server.Wire;
import io.jnbd.server.tls.ClientTls;
import io.jnbd.server.tls.TlsMode;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The client side of the NBD handshake, as the nbd plugin speaks it to its upstream server:
 * fixed newstyle with NO_ZEROES, structured replies, {@code base:allocation} and GO asking for
 * block sizes, falling back step by step for older servers (no structured replies, EXPORT_NAME
 * instead of GO, plain newstyle, oldstyle). With TLS asked for, STARTTLS comes first, and
 * everything after it goes through TLS. Every refusal and every malformed answer becomes an
 * {@link NbdException} that says what the upstream did.
 */
final class Handshake {
  /** The second magic of an oldstyle server, which sends its one export at once. */
  static final long OLDSTYLE_MAGIC = 0x00420281861253L;
  /** The longest option reply accepted; nothing the plugin asks for comes near it. */
  private static final int MAX_OPTION_REPLY = 1 << 20;

  /**
   * What the upstream server told us about its export.
   *
   * @param size the export size
   * @param transmissionFlags NBD_FLAG_* as sent
   * @param blockSize the block-size constraints, or null if the upstream did not send them
   * @param structuredReplies whether replies may be structured
   * @param allocationContext the id of {@code base:allocation}, or -1 if it was not selected
   */
  record ExportInfo(long size, int transmissionFlags, BlockSize blockSize, boolean structuredReplies, long allocationContext) {
    boolean has(int transmissionFlag) {
      return (transmissionFlags & transmissionFlag) != 0;
    }
  }

  private final Wire wire;
  private final Upstream target;
  private final String upstream;
  private final ClientTls tls;
  private boolean noZeroes;

  private Handshake(Wire wire, Upstream target, ClientTls tls) {
    this.wire = wire;
    this.target = target;
    this.upstream = target.toString();
    this.tls = tls;
  }

  /** Negotiates the upstream's export; on return the connection is in the transmission phase. */
  static ExportInfo negotiate(Wire wire, Upstream target, ClientTls tls) throws IOException {
    Handshake handshake = new Handshake(wire, target, tls);
    try {
      return handshake.run(target.exportName());
    } catch (EOFException e) {
      throw handshake.error(Errno.EIO, "closed the connection during the handshake");
    }
  }

  /** Lists the upstream's exports (NBD_OPT_LIST) and ends the session with ABORT. */
  static List<String> listExports(Wire wire, Upstream target, ClientTls tls) throws IOException {
    Handshake handshake = new Handshake(wire, target, tls);
    try {
      if (handshake.greet() != Style.FIXED_NEWSTYLE) {
        throw handshake.error(Errno.ENOTSUP, "cannot list exports (it does not speak fixed newstyle)");
      }
      handshake.startTls();
      List<String> names = handshake.list();
      handshake.sendOption(Opt.ABORT, new byte[0]);
      try {
        // Waiting for the ACK spares the server a write to a closed socket.
        handshake.readReply(Opt.ABORT);
      } catch (IOException ignored) {
        // The server may close without answering ABORT.
      }
      return names;
    } catch (EOFException e) {
      throw handshake.error(Errno.EIO, "closed the connection during the handshake");
    }
  }

  private enum Style { OLDSTYLE, NEWSTYLE, FIXED_NEWSTYLE }

  private ExportInfo run(String exportName) throws IOException {
    Style style = greet();
    if (style != Style.FIXED_NEWSTYLE && tls.mode() == TlsMode.REQUIRE) {
      throw error(Errno.EIO, "does not speak fixed newstyle, so TLS cannot be started (and it is required)");
    }
    switch (style) {
      case OLDSTYLE -> {
        ByteBuffer rest = read(8 + 4 + 124);
        long size = checkedSize(rest.getLong());
        // Global flags in the high half, the export's transmission flags in the low half.
        return new ExportInfo(size, rest.getInt() & 0xffff, null, false, -1);
      }
      case NEWSTYLE -> {
        // Only EXPORT_NAME is safe with a server that may not answer other options at all.
        return exportName(exportName, false, -1);
      }
      default -> {
        startTls();
        boolean structured = structuredReplies();
        long allocationContext = structured ? baseAllocation(exportName) : -1;
        ExportInfo info = go(exportName, structured, allocationContext);
        return info != null ? info : exportName(exportName, structured, allocationContext);
      }
    }
  }

  /** Reads the server's greeting and, from a newstyle server, answers it with the client's flags. */
  private Style greet() throws IOException {
    ByteBuffer greeting = read(16);
    long magic = greeting.getLong();
    long version = greeting.getLong();
    if (magic != Nbd.NBDMAGIC) {
      throw error(Errno.EIO, "is not an NBD server (bad magic 0x" + Long.toHexString(magic) + ")");
    }
    if (version == OLDSTYLE_MAGIC) {
      return Style.OLDSTYLE;
    }
    if (version != Nbd.IHAVEOPT) {
      throw error(Errno.EIO, "sent an unknown protocol version 0x" + Long.toHexString(version));
    }
    int serverFlags = Short.toUnsignedInt(read(2).getShort());
    boolean fixed = (serverFlags & HandshakeFlag.FIXED_NEWSTYLE) != 0;
    noZeroes = (serverFlags & HandshakeFlag.NO_ZEROES) != 0;
    // Only flags the server offered: a server drops a client that sets any other.
    ByteBuffer clientFlags = ByteBuffer.allocate(4);
    clientFlags.putInt((fixed ? ClientFlag.FIXED_NEWSTYLE : 0) | (noZeroes ? ClientFlag.NO_ZEROES : 0));
    wire.write(clientFlags.flip());
    return fixed ? Style.FIXED_NEWSTYLE : Style.NEWSTYLE;
  }

  /**
   * STARTTLS and the TLS handshake, unless TLS is off. A server that refuses STARTTLS is used
   * in plain text with tls=on, and is an error with tls=require.
   */
  private void startTls() throws IOException {
    if (tls.mode() == TlsMode.OFF) {
      return;
    }
    sendOption(Opt.STARTTLS, new byte[0]);
    OptionReply reply = readReply(Opt.STARTTLS);
    if (reply.type == Rep.ACK) {
      try {
        wire.startTls((in, out, early) -> tls.handshake(in, out, early, target.host(), target.port()));
      } catch (IOException e) {
        throw error(Errno.EIO, "TLS handshake failed (" + tls.describe() + "): " + e.getMessage());
      }
      return;
    }
    if (!isError(reply.type)) {
      throw unexpected(reply);
    }
    if (tls.mode() == TlsMode.REQUIRE) {
      throw error(Errno.EIO, "does not offer TLS (it refused STARTTLS), and TLS is required");
    }
  }

  private boolean structuredReplies() throws IOException {
    sendOption(Opt.STRUCTURED_REPLY, new byte[0]);
    OptionReply reply = readReply(Opt.STRUCTURED_REPLY);
    if (reply.type == Rep.ACK) {
      return true;
    }
    if (isError(reply.type)) {
      return false;
    }
    throw unexpected(reply);
  }

  /** Selects base:allocation; returns its id, or -1 when the upstream does not offer it. */
  private long baseAllocation(String exportName) throws IOException {
    byte[] name = utf8(exportName);
    byte[] query = utf8(Nbd.BASE_ALLOCATION);
    ByteBuffer data = ByteBuffer.allocate(4 + name.length + 4 + 4 + query.length);
    data.putInt(name.length).put(name).putInt(1).putInt(query.length).put(query);
    sendOption(Opt.SET_META_CONTEXT, data.array());
    long id = -1;
    while (true) {
      OptionReply reply = readReply(Opt.SET_META_CONTEXT);
      if (reply.type == Rep.ACK || isError(reply.type)) {
        return id;
      }
      if (reply.type != Rep.META_CONTEXT || reply.data.remaining() < 4) {
        throw unexpected(reply);
      }
      long contextId = Integer.toUnsignedLong(reply.data.getInt());
      if (Nbd.BASE_ALLOCATION.equals(StandardCharsets.UTF_8.decode(reply.data).toString())) {
        id = contextId;
      }
    }
  }

  /** NBD_OPT_GO; null when the upstream does not know GO, so EXPORT_NAME must be used. */
  private ExportInfo go(String exportName, boolean structured, long allocationContext) throws IOException {
    byte[] name = utf8(exportName);
    ByteBuffer data = ByteBuffer.allocate(4 + name.length + 2 + 2);
    data.putInt(name.length).put(name).putShort((short) 1).putShort((short) Info.BLOCK_SIZE);
    sendOption(Opt.GO, data.array());
    long size = -1;
    int transmissionFlags = 0;
    BlockSize blockSize = null;
    while (true) {
      OptionReply reply = readReply(Opt.GO);
      switch (reply.type) {
        case Rep.ACK -> {
          if (size < 0) {
            throw error(Errno.EIO, "accepted GO without saying the export's size");
          }
          return new ExportInfo(size, transmissionFlags, blockSize, structured, allocationContext);
        }
        case Rep.INFO -> {
          ByteBuffer info = reply.data;
          if (info.remaining() < 2) {
            throw unexpected(reply);
          }
          int type = Short.toUnsignedInt(info.getShort());
          if (type == Info.EXPORT) {
            if (info.remaining() != 10) {
              throw unexpected(reply);
            }
            size = checkedSize(info.getLong());
            transmissionFlags = Short.toUnsignedInt(info.getShort());
          } else if (type == Info.BLOCK_SIZE) {
            if (info.remaining() != 12) {
              throw unexpected(reply);
            }
            blockSize = blockSize(info.getInt(), info.getInt(), info.getInt());
          }
          // Other information (name, description) is not needed by a proxy.
        }
        case Rep.ERR_UNSUP -> {
          return null;
        }
        default -> throw refusal(reply, exportName);
      }
    }
  }

  private ExportInfo exportName(String exportName, boolean structured, long allocationContext) throws IOException {
    sendOption(Opt.EXPORT_NAME, utf8(exportName));
    ByteBuffer reply;
    try {
      reply = read(10 + (noZeroes ? 0 : 124));
    } catch (EOFException e) {
      throw error(Errno.EIO, "has no export named '" + exportName + "' (it closed the connection)");
    }
    long size = checkedSize(reply.getLong());
    int transmissionFlags = Short.toUnsignedInt(reply.getShort());
    return new ExportInfo(size, transmissionFlags, null, structured, allocationContext);
  }

  private List<String> list() throws IOException {
    sendOption(Opt.LIST, new byte[0]);
    List<String> names = new ArrayList<>();
    while (true) {
      OptionReply reply = readReply(Opt.LIST);
      if (reply.type == Rep.ACK) {
        return names;
      }
      if (reply.type != Rep.SERVER) {
        throw refusal(reply, "");
      }
      ByteBuffer data = reply.data;
      if (data.remaining() < 4 || Integer.toUnsignedLong(data.getInt(0)) > data.remaining() - 4) {
        throw unexpected(reply);
      }
      byte[] name = new byte[data.getInt()];
      data.get(name);
      names.add(new String(name, StandardCharsets.UTF_8));
    }
  }

  private void sendOption(int option, byte[] data) throws IOException {
    ByteBuffer header = ByteBuffer.allocate(Nbd.OPTION_HEADER_SIZE);
    header.putLong(Nbd.IHAVEOPT).putInt(option).putInt(data.length);
    wire.write(header.flip(), ByteBuffer.wrap(data));
  }

  private record OptionReply(int option, int type, ByteBuffer data) {}

  private OptionReply readReply(int option) throws IOException {
    ByteBuffer header = read(Nbd.OPTION_REPLY_HEADER_SIZE);
    long magic = header.getLong();
    int repliedOption = header.getInt();
    int type = header.getInt();
    long length = Integer.toUnsignedLong(header.getInt());
    if (magic != Nbd.OPTION_REPLY_MAGIC) {
      throw error(Errno.EIO, "sent a bad option reply magic 0x" + Long.toHexString(magic));
    }
    if (repliedOption != option) {
      throw error(Errno.EIO, "answered " + Opt.name(repliedOption) + " when asked " + Opt.name(option));
    }
    if (length > MAX_OPTION_REPLY) {
      throw error(Errno.EIO, "sent a " + length + "-byte reply to " + Opt.name(option));
    }
    return new OptionReply(option, type, read((int) length));
  }

  private ByteBuffer read(int length) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    wire.readFully(buffer);
    return buffer.flip();
  }

  private static boolean isError(int replyType) {
    return replyType < 0;
  }

  private long checkedSize(long size) throws NbdException {
    if (size < 0) {
      throw error(Errno.EIO, "reported an export size over 2^63-1 bytes");
    }
    return size;
  }

  /**
   * The upstream's block sizes, or null (the server's defaults) when they break the protocol's
   * rules, as a client that did not ask for them would see the export.
   */
  private static BlockSize blockSize(int minimum, int preferred, int maximum) {
    try {
      return new BlockSize(minimum, preferred, maximum);
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  private NbdException refusal(OptionReply reply, String exportName) {
    if (!isError(reply.type)) {
      return unexpected(reply);
    }
    String message = StandardCharsets.UTF_8.decode(reply.data).toString();
    String detail = message.isEmpty() ? "" : ": " + message;
    return switch (reply.type) {
      case Rep.ERR_UNKNOWN -> error(Errno.EIO, "has no export named '" + exportName + "'" + detail);
      case Rep.ERR_TLS_REQD -> error(Errno.EIO, "requires TLS (set tls=require with tls-certificates= or tls-psk=, "
          + "or use an nbds:// URI)" + detail);
      case Rep.ERR_SHUTDOWN -> error(Errno.ESHUTDOWN, "is shutting down" + detail);
      default -> error(Errno.EIO, "refused " + Opt.name(reply.option) + " (error 0x"
          + Integer.toHexString(reply.type) + ")" + detail);
    };
  }

  private NbdException unexpected(OptionReply reply) {
    return error(Errno.EIO, "sent an unexpected reply (type 0x" + Integer.toHexString(reply.type)
        + ", " + reply.data.limit() + " bytes) to " + Opt.name(reply.option));
  }

  private NbdException error(Errno errno, String what) {
    return new NbdException(errno, "upstream " + upstream + " " + what);
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
