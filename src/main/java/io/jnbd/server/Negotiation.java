package io.jnbd.server;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Client;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.NbdException;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.ClientFlag;
import io.jnbd.protocol.Nbd.HandshakeFlag;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.protocol.OptionData;
import io.jnbd.protocol.OptionData.InfoRequest;
import io.jnbd.protocol.OptionData.Malformed;
import io.jnbd.protocol.OptionData.MetaContextRequest;
import io.jnbd.protocol.Replies;
import io.jnbd.server.tls.TlsChannel;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fixed-newstyle handshake for one connection, up to the moment transmission starts. Every
 * option the client can send is answered, unknown ones with ERR_UNSUP; a malformed option gets
 * an error reply and the client may go on. Only what leaves the stream unparseable (bad magic,
 * unknown client flags, a huge option) or the protocol's own rules (EXPORT_NAME of an export
 * that cannot be opened) end the connection here.
 *
 * <p>With TLS on, STARTTLS upgrades the connection and the handshake starts over from a clean
 * slate (structured replies and meta contexts negotiated in the clear are forgotten, as the
 * protocol demands); with TLS required, every other option before it gets ERR_TLS_REQD and
 * EXPORT_NAME, which cannot be refused, ends the connection.
 */
final class Negotiation {
  private static final Logger log = LoggerFactory.getLogger(Negotiation.class);

  /** Options larger than this are not read; the connection is dropped instead. */
  static final int MAX_OPTION_LENGTH = 1 << 20;

  /** The id jnbd gives base:allocation when a client selects it. */
  static final int BASE_ALLOCATION_ID = 1;

  /** What the handshake settled: the open export and the reply format. */
  record Result(ServedExport export, boolean structuredReplies, boolean baseAllocation) {}

  private final Wire wire;
  private final Stack stack;
  private final ServerConfig config;
  private final String peer;
  private final TlsPolicy tls;
  /** The client as layers see it when an export is opened; gains its TLS username at STARTTLS. */
  private Client client;

  private boolean noZeroes;
  private TlsChannel tlsChannel;
  private boolean structuredReplies;
  /** The export name SET_META_CONTEXT selected base:allocation for, or null for none. */
  private String metaContextExport;

  Negotiation(Wire wire, Stack stack, ServerConfig config, String peer, Client client, TlsPolicy tls) {
    this.wire = wire;
    this.stack = stack;
    this.config = config;
    this.peer = peer;
    this.client = client;
    this.tls = tls;
  }

  /** Runs the handshake; returns null when the client aborted or must be dropped. */
  Result run() throws IOException {
    ByteBuffer greeting = ByteBuffer.allocate(18);
    int advertised = (HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES) & config.handshake().flagMask();
    greeting.putLong(Nbd.NBDMAGIC).putLong(Nbd.IHAVEOPT).putShort((short) advertised);
    wire.write(greeting.flip());

    ByteBuffer clientFlags = ByteBuffer.allocate(4);
    wire.readFully(clientFlags);
    int flags = clientFlags.flip().getInt();
    // A plain newstyle client (no FIXED_NEWSTYLE) is served too, as nbdkit and qemu do: it
    // sends only EXPORT_NAME, which needs nothing from the fixed variant.
    // The client flags answer the handshake flags bit for bit: one the server withheld is unknown.
    if ((flags & ~(ClientFlag.KNOWN & advertised)) != 0) {
      log.info("{}: dropped: unknown client flags 0x{}", peer, Integer.toHexString(flags));
      return null;
    }
    noZeroes = (flags & ClientFlag.NO_ZEROES) != 0;

    ByteBuffer header = ByteBuffer.allocate(Nbd.OPTION_HEADER_SIZE);
    while (true) {
      wire.readFully(header.clear());
      header.flip();
      long magic = header.getLong();
      int option = header.getInt();
      long length = Integer.toUnsignedLong(header.getInt());
      if (magic != Nbd.IHAVEOPT) {
        log.info("{}: dropped: bad option magic 0x{}", peer, Long.toHexString(magic));
        return null;
      }
      if (length > MAX_OPTION_LENGTH) {
        log.info("{}: dropped: {} of {} bytes is over the limit of {}", peer, Opt.name(option), length, MAX_OPTION_LENGTH);
        return null;
      }
      ByteBuffer data = ByteBuffer.allocate((int) length);
      wire.readFully(data);
      data.flip();
      if (config.verbose()) {
        log.debug("{}: option {} ({} bytes)", peer, Opt.name(option), length);
      }
      if (tls.mode() == TlsMode.REQUIRE && tlsChannel == null && option != Opt.STARTTLS && option != Opt.ABORT) {
        if (option == Opt.EXPORT_NAME) {
          // EXPORT_NAME has no error reply: the protocol's answer is to disconnect.
          log.info("{}: dropped: EXPORT_NAME before STARTTLS, and TLS is required", peer);
          return null;
        }
        wire.write(Replies.optionError(option, Rep.ERR_TLS_REQD, "TLS is required: send STARTTLS first"));
        continue;
      }
      switch (option) {
        case Opt.EXPORT_NAME -> {
          return exportName(data);
        }
        case Opt.ABORT -> {
          sendAck(option);
          return null;
        }
        case Opt.LIST -> list(data);
        case Opt.STARTTLS -> startTls(data);
        case Opt.INFO, Opt.GO -> {
          Result result = infoOrGo(option, data);
          if (result != null) {
            return result;
          }
        }
        case Opt.STRUCTURED_REPLY -> {
          if (!config.handshake().structuredReplies()) {
            wire.write(Replies.optionError(option, Rep.ERR_UNSUP, "structured replies are turned off (--no-sr)"));
          } else if (data.hasRemaining()) {
            wire.write(Replies.optionError(option, Rep.ERR_INVALID, "STRUCTURED_REPLY takes no data"));
          } else if (structuredReplies) {
            wire.write(Replies.optionError(option, Rep.ERR_INVALID, "structured replies are already on"));
          } else {
            structuredReplies = true;
            sendAck(option);
          }
        }
        case Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT -> {
          if (config.handshake().metaContexts() && config.handshake().structuredReplies()) {
            metaContext(option, data);
          } else {
            wire.write(Replies.optionError(option, Rep.ERR_UNSUP, "meta contexts are turned off"));
          }
        }
        default -> wire.write(Replies.optionError(option, Rep.ERR_UNSUP, Opt.name(option) + " is not supported"));
      }
    }
  }

  private void startTls(ByteBuffer data) throws IOException {
    if (data.hasRemaining()) {
      wire.write(Replies.optionError(Opt.STARTTLS, Rep.ERR_INVALID, "STARTTLS takes no data"));
    } else if (tls.mode() == TlsMode.OFF) {
      wire.write(Replies.optionError(Opt.STARTTLS, Rep.ERR_POLICY, "TLS is not enabled on this server"));
    } else if (tlsChannel != null) {
      wire.write(Replies.optionError(Opt.STARTTLS, Rep.ERR_INVALID, "TLS is already on"));
    } else {
      sendAck(Opt.STARTTLS);
      try {
        tlsChannel = wire.startTls(tls, peer);
      } catch (IOException e) {
        throw new IOException("TLS handshake failed: " + e.getMessage(), e);
      }
      client = new Client(client.address(), tlsChannel.username());
      structuredReplies = false;
      metaContextExport = null;
    }
  }

  private void sendAck(int option) throws IOException {
    wire.write(Replies.optionReply(option, Rep.ACK, new byte[0]));
  }

  /** The name an empty export name stands for: -e, else the stack's default. */
  private String resolve(String name) throws IOException {
    if (!name.isEmpty()) {
      return name;
    }
    return config.exportName() != null ? config.exportName() : stack.defaultExport(config.readOnly());
  }

  private Result exportName(ByteBuffer data) throws IOException {
    String requested;
    try {
      requested = OptionData.exportName(data);
    } catch (Malformed e) {
      // EXPORT_NAME has no error reply: the protocol's answer is to disconnect.
      log.info("{}: dropped: {}", peer, e.getMessage());
      return null;
    }
    String name = resolve(requested);
    ServedExport export;
    try {
      export = open(name);
    } catch (IOException | RuntimeException e) {
      // EXPORT_NAME has no error reply: the protocol's answer is to disconnect.
      log.info("{}: dropped: cannot open export '{}': {}", peer, requested, e.getMessage());
      return null;
    }
    wire.write(Replies.exportNameReply(export.size, export.transmissionFlags(structuredReplies), noZeroes));
    return new Result(export, structuredReplies, baseAllocationSelectedFor(name));
  }

  private ServedExport open(String name) throws IOException {
    return client.callAs(() -> ServedExport.open(stack, name, config.readOnly()));
  }

  private void list(ByteBuffer data) throws IOException {
    if (data.hasRemaining()) {
      wire.write(Replies.optionError(Opt.LIST, Rep.ERR_INVALID, "LIST takes no data"));
      return;
    }
    List<ExportDescription> exports;
    try {
      exports = stack.listExports(config.readOnly());
    } catch (IOException | RuntimeException e) {
      wire.write(Replies.optionError(Opt.LIST, Rep.ERR_PLATFORM, "cannot list exports: " + e.getMessage()));
      return;
    }
    for (ExportDescription export : exports) {
      String name = export.name().isEmpty() && config.exportName() != null ? config.exportName() : export.name();
      wire.write(Replies.server(name, export.description()));
    }
    sendAck(Opt.LIST);
  }

  private Result infoOrGo(int option, ByteBuffer data) throws IOException {
    InfoRequest request;
    try {
      request = OptionData.infoRequest(data);
    } catch (Malformed e) {
      wire.write(Replies.optionError(option, e.replyType(), e.getMessage()));
      return null;
    }
    String name = resolve(request.exportName());
    ServedExport export;
    try {
      export = open(name);
    } catch (NbdException e) {
      wire.write(Replies.optionError(option, Rep.ERR_UNKNOWN, "cannot open export '" + name + "': " + e.getMessage()));
      return null;
    } catch (IOException | RuntimeException e) {
      log.warn("{}: cannot open export '{}': {}", peer, name, e.toString());
      wire.write(Replies.optionError(option, Rep.ERR_PLATFORM, "cannot open export '" + name + "'"));
      return null;
    }
    boolean keep = false;
    try {
      wire.write(Replies.infoExport(option, export.size, export.transmissionFlags(structuredReplies)));
      // Each type at most once, as the protocol asks, however often the client lists it.
      for (int type : request.infoTypes().stream().distinct().toList()) {
        switch (type) {
          case Nbd.Info.NAME -> wire.write(Replies.infoText(option, Nbd.Info.NAME, name));
          case Nbd.Info.DESCRIPTION -> {
            String description = describe(name);
            if (!description.isEmpty()) {
              wire.write(Replies.infoText(option, Nbd.Info.DESCRIPTION, description));
            }
          }
          default -> {
            // EXPORT is always sent, BLOCK_SIZE below; the client must ignore what it cannot use.
          }
        }
      }
      // Sent whether asked or not, as qemu does: a client that did not ask may still use it.
      BlockSize blockSize = export.blockSize;
      wire.write(Replies.infoBlockSize(option, blockSize.minimum(), blockSize.preferred(), blockSize.maximum()));
      sendAck(option);
      if (option == Opt.GO) {
        keep = true;
        return new Result(export, structuredReplies, baseAllocationSelectedFor(name));
      }
      return null;
    } finally {
      if (!keep) {
        export.close();
      }
    }
  }

  /**
   * Whether the last SET_META_CONTEXT selected base:allocation for this export. It counts for
   * EXPORT_NAME as much as for GO: the protocol asks only that the names match.
   */
  private boolean baseAllocationSelectedFor(String name) {
    return structuredReplies && name.equals(metaContextExport);
  }

  private String describe(String name) {
    try {
      for (ExportDescription export : stack.listExports(config.readOnly())) {
        if (export.name().equals(name)) {
          return export.description();
        }
      }
    } catch (IOException | RuntimeException e) {
      log.debug("{}: cannot list exports for a description: {}", peer, e.toString());
    }
    return "";
  }

  private void metaContext(int option, ByteBuffer data) throws IOException {
    boolean set = option == Opt.SET_META_CONTEXT;
    if (set) {
      // SET_META_CONTEXT replaces the selection even when it fails, so a failed one leaves none.
      metaContextExport = null;
    }
    MetaContextRequest request;
    try {
      request = OptionData.metaContextRequest(data);
    } catch (Malformed e) {
      wire.write(Replies.optionError(option, e.replyType(), e.getMessage()));
      return;
    }
    if (set && !structuredReplies) {
      wire.write(Replies.optionError(option, Rep.ERR_INVALID, "SET_META_CONTEXT needs structured replies first"));
      return;
    }
    boolean selected = false;
    if (request.queries().isEmpty()) {
      // No query lists every context, and selects none.
      selected = !set;
    }
    List<String> matches = new ArrayList<>();
    for (String query : request.queries()) {
      boolean match = query.equals(Nbd.BASE_ALLOCATION) || (!set && query.equals("base:"));
      if (match) {
        selected = true;
      }
    }
    if (selected) {
      matches.add(Nbd.BASE_ALLOCATION);
    }
    for (String match : matches) {
      wire.write(Replies.metaContext(option, set ? BASE_ALLOCATION_ID : 0, match));
    }
    if (set) {
      metaContextExport = selected ? resolve(request.exportName()) : null;
    }
    sendAck(option);
  }
}
