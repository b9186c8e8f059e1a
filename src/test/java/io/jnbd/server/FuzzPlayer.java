package io.jnbd.server;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Nbd.HandshakeFlag;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.protocol.Nbd.TransmissionFlag;
import io.jnbd.protocol.Request;
import io.jnbd.server.FuzzScript.BadMagic;
import io.jnbd.server.FuzzScript.Burst;
import io.jnbd.server.FuzzScript.ClientFlags;
import io.jnbd.server.FuzzScript.Command;
import io.jnbd.server.FuzzScript.End;
import io.jnbd.server.FuzzScript.Garble;
import io.jnbd.server.FuzzScript.Message;
import io.jnbd.server.FuzzScript.Option;
import io.jnbd.server.FuzzScript.OptionOutcome;
import io.jnbd.server.FuzzScript.Partial;
import io.jnbd.server.FuzzScript.Step;
import io.jnbd.server.FuzzScript.Transmission;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Plays one {@link FuzzScript} against a server and judges everything that comes back. The
 * server must never hang (every wait is bounded by the client's timeout, and after the client
 * stops sending the server must answer what it owes and hang up); every reply must be well
 * formed (magics, lengths, reply and chunk types, the option or cookie of something sent and not
 * yet answered, error values NBD defines); options must get the outcome the script expects;
 * requests must get the outcome the protocol's rules give for their fields, refused with an
 * error it allows or served; and what reads and zero-status extents report must match the
 * {@link ExportModel}. A failure is an {@link AssertionError} naming the step.
 */
final class FuzzPlayer {
  private static final Set<Integer> ERRNOS = Set.of(1, 5, 12, 22, 28, 75, 95, 108);
  private static final int EINVAL = 22;
  private static final int ENOSPC = 28;
  private static final int EOVERFLOW = 75;
  private static final int ENOTSUP = 95;
  private static final Set<Integer> OPTION_ERRORS = Set.of(Rep.ERR_UNSUP, Rep.ERR_POLICY, Rep.ERR_INVALID,
      Rep.ERR_PLATFORM, Rep.ERR_TLS_REQD, Rep.ERR_UNKNOWN, Rep.ERR_SHUTDOWN, Rep.ERR_BLOCK_SIZE_REQD, Rep.ERR_TOO_BIG);
  /** Transmission flags defined by the protocol that need nothing jnbd does not negotiate. */
  private static final int KNOWN_TRANSMISSION_FLAGS = ((1 << 12) - 1) & ~TransmissionFlag.SEND_RESIZE;
  /** The server must send unfragmented reads of up to this many bytes. */
  private static final int UNFRAGMENTED_READ = 65536;
  private static final int MAX_OPTION_REPLY = 64 * 1024;
  private static final int MAX_EXTENTS = 1 << 20;

  private final RawClient client;
  private final ExportModel model;
  private final FuzzTally tally;
  private String step = "greeting";
  private boolean structuredReplies;
  /** The id of base:allocation from the last SET_META_CONTEXT; null when it selected nothing. */
  private Integer contextId;
  /** What transmission started with; null during the handshake. */
  private Negotiated session;
  /** The server's reading of the stream can no longer be predicted; replies are only checked for form. */
  private boolean garbled;
  private boolean hungUp;
  /** Requests sent and not yet answered, by cookie. */
  private final Map<Long, Pending> unanswered = new HashMap<>();
  /** Cookies of requests sent after DISC or a bad magic: the server must not have read them. */
  private final Set<Long> unread = new HashSet<>();
  /** Requests since the model was last brought up to date. */
  private final List<Pending> window = new ArrayList<>();

  private FuzzPlayer(RawClient client, ExportModel model, FuzzTally tally) {
    this.client = client;
    this.model = model;
    this.tally = tally;
  }

  /** Plays the script on a new connection; the model follows what the session did to the export. */
  static void play(Path socket, Duration timeout, ExportModel model, FuzzTally tally, FuzzScript script)
      throws IOException {
    try (RawClient client = new RawClient(socket, timeout)) {
      FuzzPlayer player = new FuzzPlayer(client, model, tally);
      try {
        player.play(script);
      } catch (IOException e) {
        // The report names the session but, with its stack trace trimmed, not where in it.
        throw new IOException("at " + player.step + ": " + e.getMessage(), e);
      }
    }
  }

  /**
   * What transmission started with.
   *
   * @param contextId the id of base:allocation, or null when BLOCK_STATUS may not be used
   */
  record Negotiated(long size, int flags, boolean structuredReplies, Integer contextId, long maxPayload) {
    boolean advertises(int flag) {
      return (flags & flag) != 0;
    }
  }

  /** What the server may answer to a request: success, and which error values. */
  static final class Expectation {
    boolean successAllowed = true;
    final Set<Integer> errnos = new TreeSet<>();

    void refuse(int... allowed) {
      successAllowed = false;
      allow(allowed);
    }

    void allow(int... allowed) {
      for (int errno : allowed) {
        errnos.add(errno);
      }
    }

    @Override
    public String toString() {
      return (successAllowed ? "success" : "") + (successAllowed && !errnos.isEmpty() ? " or " : "")
          + (errnos.isEmpty() ? "" : "errno " + errnos);
    }
  }

  /**
   * The protocol's rules for a request, from its fields and the negotiated state: EINVAL for
   * unknown commands and flags, flags that do not apply or were not advertised, commands not
   * advertised, BLOCK_STATUS without a selected context, and ranges past the end (ENOSPC for
   * writes); reads over the maximum payload are refused. What the protocol leaves open (zero
   * lengths, FLUSH with an offset, CACHE not advertised, fast zero) may succeed or fail.
   */
  static Expectation expect(Request request, Negotiated session) {
    Expectation expectation = new Expectation();
    int type = request.type();
    long length = request.length();
    boolean known = type <= Cmd.BLOCK_STATUS;
    if (!known) {
      expectation.refuse(EINVAL);
    }
    if ((request.flags() & ~CmdFlag.KNOWN) != 0) {
      expectation.refuse(EINVAL);
    }
    // FUA is valid on every command once SEND_FUA is advertised: the server MUST accept it.
    if (request.has(CmdFlag.FUA) && !session.advertises(TransmissionFlag.SEND_FUA)) {
      expectation.refuse(EINVAL);
    }
    if (request.has(CmdFlag.NO_HOLE) && type != Cmd.WRITE_ZEROES) {
      expectation.refuse(EINVAL);
    }
    if (request.has(CmdFlag.FAST_ZERO)) {
      if (type != Cmd.WRITE_ZEROES || !session.advertises(TransmissionFlag.SEND_FAST_ZERO)) {
        expectation.refuse(EINVAL);
      } else {
        expectation.allow(ENOTSUP);
      }
    }
    if (request.has(CmdFlag.DF)) {
      if (type != Cmd.READ || !session.advertises(TransmissionFlag.SEND_DF)) {
        expectation.refuse(EINVAL);
      } else if (length > UNFRAGMENTED_READ) {
        expectation.allow(EOVERFLOW);
      }
    }
    if (request.has(CmdFlag.REQ_ONE) && type != Cmd.BLOCK_STATUS) {
      expectation.refuse(EINVAL);
    }
    switch (type) {
      case Cmd.FLUSH -> {
        if (!session.advertises(TransmissionFlag.SEND_FLUSH)) {
          expectation.refuse(EINVAL);
        }
        if (request.offset() != 0 || length != 0) {
          expectation.allow(EINVAL);
        }
        return expectation;
      }
      case Cmd.TRIM -> {
        if (!session.advertises(TransmissionFlag.SEND_TRIM)) {
          expectation.refuse(EINVAL);
        }
      }
      case Cmd.WRITE_ZEROES -> {
        if (!session.advertises(TransmissionFlag.SEND_WRITE_ZEROES)) {
          expectation.refuse(EINVAL);
        }
      }
      case Cmd.CACHE -> {
        if (!session.advertises(TransmissionFlag.SEND_CACHE)) {
          expectation.allow(EINVAL);
        }
      }
      case Cmd.BLOCK_STATUS -> {
        if (session.contextId() == null) {
          expectation.refuse(EINVAL);
        }
      }
      case Cmd.READ, Cmd.WRITE -> {
        if (length > session.maxPayload()) {
          expectation.refuse(EINVAL);
        }
      }
      default -> {
        // Unknown: refused above.
      }
    }
    if (known) {
      if (!request.fitsIn(session.size())) {
        expectation.refuse(type == Cmd.WRITE || type == Cmd.WRITE_ZEROES ? ENOSPC : EINVAL);
      } else if (length == 0) {
        expectation.allow(EINVAL);
      }
    }
    return expectation;
  }

  /** A request on its way, and what has come back for it so far. */
  private static final class Pending {
    final Request request;
    /** The WRITE payload; null for other commands, and for a write whose payload is uncertain. */
    final byte[] payload;
    /** Null when the stream was garbled: then only the form of the reply is checked. */
    final Expectation expected;
    byte[] data;
    final BitSet covered = new BitSet();
    int contentChunks;
    int statusChunks;
    long[] extentLengths = new long[0];
    int[] extentStatuses = new int[0];
    Integer error;
    boolean done;

    Pending(Request request, byte[] payload, Expectation expected) {
      this.request = request;
      this.payload = payload;
      this.expected = expected;
    }

    @Override
    public String toString() {
      return request + " cookie=" + Long.toUnsignedString(request.cookie());
    }
  }

  private void play(FuzzScript script) throws IOException {
    greeting();
    List<Step> steps = script.steps();
    for (int i = 0; i < steps.size(); i++) {
      Step next = steps.get(i);
      step = "step " + (i + 1) + " (" + next.toString().lines().findFirst().orElse("") + ")";
      switch (next) {
        case ClientFlags flags -> clientFlags(flags);
        case Option option -> option(option);
        case Burst burst -> burst(burst);
        case Partial partial -> sendBlind(ByteBuffer.wrap(partial.bytes()));
        case Garble garble -> {
          sendBlind(ByteBuffer.wrap(garble.bytes()));
          garbled = true;
        }
        case End end -> end(end);
      }
    }
  }

  // --- handshake ---------------------------------------------------------------------------

  private void greeting() throws IOException {
    ByteBuffer greeting = client.read(18);
    long magic = greeting.getLong();
    long ihaveopt = greeting.getLong();
    int flags = Short.toUnsignedInt(greeting.getShort());
    check(magic == Nbd.NBDMAGIC && ihaveopt == Nbd.IHAVEOPT, "greeting magics 0x%x 0x%x", magic, ihaveopt);
    check((flags & HandshakeFlag.FIXED_NEWSTYLE) != 0 && (flags & ~(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES)) == 0,
        "greeting flags 0x%x", flags);
  }

  private void clientFlags(ClientFlags flags) throws IOException {
    client.send(ByteBuffer.wrap(flags.bytes()));
    if (flags.dropped()) {
      expectHangUp();
    }
  }

  /** What the replies to one option said. */
  private static final class Answer {
    /** ACK or an error type; null when the server hung up first. */
    Integer finalType;
    final Set<String> contexts = new HashSet<>();
    Integer baseAllocationId;
    final Set<Integer> infoTypes = new HashSet<>();
    long size = -1;
    int flags;
    long maxPayload = FuzzGenerator.MAX_PAYLOAD;
  }

  private void option(Option option) throws IOException {
    if (garbled || hungUp) {
      sendBlind(ByteBuffer.wrap(option.bytes()));
      return;
    }
    if (option.outcome() == OptionOutcome.DROPPED) {
      // The server may hang up before it has read it all.
      sendBlind(ByteBuffer.wrap(option.bytes()));
    } else {
      client.send(ByteBuffer.wrap(option.bytes()));
    }
    if (option.option() == Opt.EXPORT_NAME) {
      exportName(option);
      return;
    }
    Answer answer = optionReplies(option.option());
    Integer type = answer.finalType;
    if (type != null) {
      tally.optionsAnswered++;
    }
    switch (option.outcome()) {
      case ACK -> check(type != null && type == Rep.ACK, "answered %s instead of ACK", replyName(type));
      case ERROR -> check(type != null && type < 0, "answered %s instead of an error", replyName(type));
      case UNSUPPORTED -> check(type != null && type == Rep.ERR_UNSUP, "answered %s instead of ERR_UNSUP", replyName(type));
      case ANSWERED -> check(type != null, "hung up instead of answering");
      case DROPPED -> {
        expectHangUp();
        return;
      }
    }
    if (option.option() == Opt.SET_META_CONTEXT) {
      // Every SET_META_CONTEXT replaces the selection, also one that fails.
      contextId = type == Rep.ACK ? answer.baseAllocationId : null;
    }
    if (type != Rep.ACK) {
      return;
    }
    if (option.contexts() != null) {
      check(answer.contexts.equals(option.contexts()), "listed contexts %s instead of %s", answer.contexts, option.contexts());
    }
    switch (option.option()) {
      case Opt.STRUCTURED_REPLY -> structuredReplies = true;
      case Opt.INFO, Opt.GO -> {
        check(answer.infoTypes.contains(Nbd.Info.EXPORT), "ACK without NBD_INFO_EXPORT");
        checkExport(answer.size, answer.flags);
        if (option.option() == Opt.GO) {
          startTransmission(option.transmission(), answer.size, answer.flags, answer.maxPayload);
        }
      }
      default -> {
        // Nothing more to check.
      }
    }
  }

  private void exportName(Option option) throws IOException {
    if (option.outcome() == OptionOutcome.DROPPED) {
      expectHangUp();
      return;
    }
    Transmission transmission = option.transmission();
    ByteBuffer reply = client.readOrEnd(10 + (transmission.zeroPadded() ? 124 : 0));
    check(reply != null, "hung up instead of answering");
    long size = reply.getLong();
    int flags = Short.toUnsignedInt(reply.getShort());
    while (reply.hasRemaining()) {
      check(reply.get() == 0, "padding after the export size is not zero");
    }
    checkExport(size, flags);
    startTransmission(transmission, size, flags, FuzzGenerator.MAX_PAYLOAD);
  }

  private void checkExport(long size, int flags) {
    check(size == model.size(), "export size %d instead of %d", size, model.size());
    check((flags & TransmissionFlag.HAS_FLAGS) != 0 && (flags & ~KNOWN_TRANSMISSION_FLAGS) == 0,
        "transmission flags 0x%x", flags);
    check((flags & TransmissionFlag.READ_ONLY) == 0, "a writable export advertised read-only");
    check(((flags & TransmissionFlag.SEND_DF) != 0) == structuredReplies, "SEND_DF %s structured replies",
        structuredReplies ? "missing with" : "without");
    check((flags & TransmissionFlag.SEND_FAST_ZERO) == 0 || (flags & TransmissionFlag.SEND_WRITE_ZEROES) != 0,
        "SEND_FAST_ZERO without SEND_WRITE_ZEROES");
  }

  private void startTransmission(Transmission transmission, long size, int flags, long maxPayload) {
    check(transmission.structuredReplies() == structuredReplies, "structured replies are %s", structuredReplies ? "on" : "off");
    check(!transmission.baseAllocation() || contextId != null, "base:allocation was selected but has no id");
    session = new Negotiated(size, flags, structuredReplies, transmission.baseAllocation() ? contextId : null, maxPayload);
  }

  /** Reads the replies to one option up to the final one (or the server hanging up). */
  private Answer optionReplies(int option) throws IOException {
    Answer answer = new Answer();
    while (true) {
      ByteBuffer header = client.readOrEnd(Nbd.OPTION_REPLY_HEADER_SIZE);
      if (header == null) {
        hungUp = true;
        return answer;
      }
      long magic = header.getLong();
      int echoed = header.getInt();
      int type = header.getInt();
      long length = Integer.toUnsignedLong(header.getInt());
      check(magic == Nbd.OPTION_REPLY_MAGIC, "option reply magic 0x%x", magic);
      check(garbled || echoed == option, "a reply for option %s to %s", Opt.name(echoed), Opt.name(option));
      check(length <= MAX_OPTION_REPLY, "an option reply of %d bytes", length);
      ByteBuffer payload = client.read((int) length);
      if (type < 0) {
        check(OPTION_ERRORS.contains(type), "unknown error reply 0x%x", type);
        utf8(payload, "error message");
        answer.finalType = type;
        return answer;
      }
      switch (type) {
        case Rep.ACK -> {
          check(length == 0, "ACK with %d bytes of data", length);
          answer.finalType = type;
          return answer;
        }
        case Rep.SERVER -> {
          check(garbled || option == Opt.LIST, "REP_SERVER for %s", Opt.name(option));
          check(length >= 4, "REP_SERVER of %d bytes", length);
          long nameLength = Integer.toUnsignedLong(payload.getInt());
          check(nameLength <= length - 4, "REP_SERVER name length %d overruns the reply", nameLength);
          utf8(payload.slice(4, (int) nameLength), "export name");
          utf8(payload.slice(4 + (int) nameLength, (int) (length - 4 - nameLength)), "export description");
        }
        case Rep.INFO -> {
          check(garbled || option == Opt.INFO || option == Opt.GO, "REP_INFO for %s", Opt.name(option));
          info(payload, answer);
        }
        case Rep.META_CONTEXT -> {
          check(garbled || option == Opt.LIST_META_CONTEXT || option == Opt.SET_META_CONTEXT,
              "REP_META_CONTEXT for %s", Opt.name(option));
          check(length >= 5, "REP_META_CONTEXT of %d bytes", length);
          int id = payload.getInt();
          String name = utf8(payload, "context name");
          check(name.indexOf(':') > 0, "context name '%s' has no namespace", name);
          check(answer.contexts.add(name), "context %s listed twice", name);
          if (name.equals(Nbd.BASE_ALLOCATION)) {
            answer.baseAllocationId = id;
          }
        }
        default -> throw failure("unknown option reply type %d", type);
      }
    }
  }

  private void info(ByteBuffer payload, Answer answer) {
    check(payload.remaining() >= 2, "REP_INFO of %d bytes", payload.remaining());
    int type = Short.toUnsignedInt(payload.getShort());
    check(answer.infoTypes.add(type), "information type %d sent twice", type);
    switch (type) {
      case Nbd.Info.EXPORT -> {
        check(payload.remaining() == 10, "NBD_INFO_EXPORT of %d bytes", payload.remaining() + 2);
        answer.size = payload.getLong();
        answer.flags = Short.toUnsignedInt(payload.getShort());
      }
      case Nbd.Info.NAME, Nbd.Info.DESCRIPTION -> {
        check(payload.remaining() <= Nbd.MAX_STRING, "information text of %d bytes", payload.remaining());
        utf8(payload, "information text");
      }
      case Nbd.Info.BLOCK_SIZE -> {
        check(payload.remaining() == 12, "NBD_INFO_BLOCK_SIZE of %d bytes", payload.remaining() + 2);
        int minimum = payload.getInt();
        int preferred = payload.getInt();
        long maximum = Integer.toUnsignedLong(payload.getInt());
        check(Integer.bitCount(minimum) == 1 && minimum <= 65536, "minimum block size %d", minimum);
        check(Integer.bitCount(preferred) == 1 && preferred >= Math.max(512, minimum), "preferred block size %d", preferred);
        check(maximum >= Math.min(preferred, model.size()) && (maximum == 0xFFFFFFFFL || maximum % minimum == 0),
            "maximum block size %d", maximum);
        answer.maxPayload = maximum;
      }
      default -> throw failure("unknown information type %d", type);
    }
  }

  // --- transmission ------------------------------------------------------------------------

  private void burst(Burst burst) throws IOException {
    check(session != null || garbled || hungUp, "requests before transmission");
    List<ByteBuffer> heard = new ArrayList<>();
    List<ByteBuffer> ignored = new ArrayList<>();
    String stop = null;
    boolean open = false;
    for (Message message : burst.messages()) {
      if (garbled || hungUp || stop != null || open) {
        ignored.add(ByteBuffer.wrap(message.bytes()));
        if (message instanceof Command command) {
          if (stop != null) {
            unread.add(command.request().cookie());
          } else {
            await(command.request(), command.payload(), null);
          }
        }
        continue;
      }
      if (message instanceof BadMagic bad && bad.bytes().length > Nbd.REQUEST_SIZE) {
        // The server hangs up once it has read the header, maybe before the payload is all sent.
        heard.add(ByteBuffer.wrap(bad.bytes(), 0, Nbd.REQUEST_SIZE));
        ignored.add(ByteBuffer.wrap(bad.bytes(), Nbd.REQUEST_SIZE, bad.bytes().length - Nbd.REQUEST_SIZE));
      } else {
        heard.add(ByteBuffer.wrap(message.bytes()));
      }
      switch (message) {
        case Command command when command.request().type() == Cmd.DISC -> stop = "DISC";
        case Command command -> await(command.request(), command.payload(), expect(command.request(), session));
        case BadMagic bad -> stop = "a request with a bad magic";
        case Partial partial -> open = true;
        case Garble garble -> {
          garbled = true;
          // A short or long payload: the write may still run, with whatever bytes follow.
          if (garble.bytes().length >= Nbd.REQUEST_SIZE) {
            await(Request.decode(ByteBuffer.wrap(garble.bytes())), null, null);
          }
        }
      }
    }
    client.send(heard.toArray(ByteBuffer[]::new));
    sendBlind(ignored.toArray(ByteBuffer[]::new));
    if (garbled || open || hungUp) {
      // The client ends next; what is owed is read then.
      return;
    }
    while (owed() > 0) {
      if (!readReply()) {
        throw failure("hung up with %d requests unanswered", owed());
      }
    }
    if (stop != null) {
      step = "after " + stop;
      expectHangUp();
    }
    settle();
  }

  private void await(Request request, byte[] payload, Expectation expected) {
    Pending pending = new Pending(request, payload, expected);
    unanswered.put(request.cookie(), pending);
    window.add(pending);
  }

  /** Requests that must still be answered. */
  private long owed() {
    return unanswered.values().stream().filter(pending -> pending.expected != null).count();
  }

  /** Reads one reply; returns false when the server hung up instead. */
  private boolean readReply() throws IOException {
    ByteBuffer magic = client.readOrEnd(4);
    if (magic == null) {
      hungUp = true;
      return false;
    }
    int value = magic.getInt();
    if (value == Nbd.SIMPLE_REPLY_MAGIC) {
      simpleReply();
    } else if (value == Nbd.STRUCTURED_REPLY_MAGIC && session.structuredReplies()) {
      chunk();
    } else {
      throw failure("reply magic 0x%08x", value);
    }
    return true;
  }

  private Pending answering(long cookie) {
    String shown = Long.toUnsignedString(cookie);
    check(!unread.contains(cookie), "a reply for cookie %s, sent after the server stopped reading", shown);
    Pending pending = unanswered.get(cookie);
    check(pending != null, "a reply for cookie %s, which awaits none", shown);
    return pending;
  }

  private void simpleReply() throws IOException {
    ByteBuffer header = client.read(12);
    int error = header.getInt();
    Pending pending = answering(header.getLong());
    Request request = pending.request;
    check(!session.structuredReplies() || request.type() != Cmd.READ && request.type() != Cmd.BLOCK_STATUS,
        "a simple reply to %s after structured replies were negotiated", pending);
    if (error != 0) {
      check(ERRNOS.contains(error), "error %d for %s is no NBD error value", error, pending);
      pending.error = error;
    } else if (request.type() == Cmd.READ) {
      check(request.fitsIn(model.size()), "data for %s, which lies outside the export", pending);
      pending.data = client.read((int) request.length()).array();
      pending.covered.set(0, (int) request.length());
    }
    finish(pending);
  }

  private void chunk() throws IOException {
    ByteBuffer header = client.read(Nbd.CHUNK_HEADER_SIZE - 4);
    int flags = Short.toUnsignedInt(header.getShort());
    int type = Short.toUnsignedInt(header.getShort());
    Pending pending = answering(header.getLong());
    long length = Integer.toUnsignedLong(header.getInt());
    Request request = pending.request;
    check((flags & ~Chunk.FLAG_DONE) == 0, "chunk flags 0x%x for %s", flags, pending);
    long limit = type == Chunk.OFFSET_DATA ? 8 + Math.min(request.length(), model.size()) : 4 + 8L * MAX_EXTENTS;
    check(length <= limit, "a chunk of %d bytes for %s", length, pending);
    ByteBuffer payload = client.read((int) length);
    switch (type) {
      case Chunk.NONE -> {
        check(length == 0, "NONE chunk of %d bytes", length);
        check((flags & Chunk.FLAG_DONE) != 0, "NONE chunk without DONE");
      }
      case Chunk.OFFSET_DATA -> {
        check(length >= 9, "OFFSET_DATA chunk of %d bytes", length);
        content(pending, payload.getLong(), length - 8, payload);
      }
      case Chunk.OFFSET_HOLE -> {
        check(length == 12, "OFFSET_HOLE chunk of %d bytes", length);
        long offset = payload.getLong();
        long size = Integer.toUnsignedLong(payload.getInt());
        check(size > 0, "an empty hole");
        content(pending, offset, size, null);
      }
      case Chunk.BLOCK_STATUS -> status(pending, payload);
      case Chunk.ERROR, Chunk.ERROR_OFFSET -> {
        check(length >= (type == Chunk.ERROR ? 6 : 14), "error chunk of %d bytes", length);
        int error = payload.getInt();
        int messageLength = Short.toUnsignedInt(payload.getShort());
        check(length == 6 + messageLength + (type == Chunk.ERROR ? 0 : 8), "error chunk of %d bytes with a %d-byte message",
            length, messageLength);
        check(ERRNOS.contains(error), "error %d for %s is no NBD error value", error, pending);
        utf8(payload.slice(6, messageLength), "error message");
        if (type == Chunk.ERROR_OFFSET) {
          long offset = payload.getLong(6 + messageLength);
          check(offset - request.offset() >= 0 && offset - request.offset() < request.length(),
              "error offset %d outside %s", offset, pending);
        }
        if (pending.error == null) {
          pending.error = error;
        }
      }
      default -> throw failure("chunk type %d for %s", type, pending);
    }
    if ((flags & Chunk.FLAG_DONE) != 0) {
      finish(pending);
    }
  }

  private void content(Pending pending, long offset, long size, ByteBuffer data) {
    Request request = pending.request;
    check(request.type() == Cmd.READ, "data for %s", pending);
    check(request.fitsIn(model.size()), "data for %s, which lies outside the export", pending);
    long from = offset - request.offset();
    check(from >= 0 && size <= request.length() - from, "data at %d+%d outside %s", offset, size, pending);
    int start = (int) from;
    int end = (int) (from + size);
    int overlap = pending.covered.nextSetBit(start);
    check(overlap < 0 || overlap >= end, "data at %d overlaps earlier data for %s", offset, pending);
    if (pending.data == null) {
      pending.data = new byte[(int) request.length()];
    }
    if (data != null) {
      data.get(pending.data, start, end - start);
    }
    pending.covered.set(start, end);
    pending.contentChunks++;
  }

  private void status(Pending pending, ByteBuffer payload) {
    Request request = pending.request;
    check(request.type() == Cmd.BLOCK_STATUS, "block status for %s", pending);
    int length = payload.remaining();
    check(length >= 12 && (length - 4) % 8 == 0, "BLOCK_STATUS chunk of %d bytes", length);
    int id = payload.getInt();
    check(session.contextId() != null, "%s got block status, but no metadata context is selected", pending);
    check(id == session.contextId(), "status for context id %d instead of %d", id, session.contextId());
    check(++pending.statusChunks == 1, "two status chunks for one context");
    int count = (length - 4) / 8;
    pending.extentLengths = new long[count];
    pending.extentStatuses = new int[count];
    for (int i = 0; i < count; i++) {
      pending.extentLengths[i] = Integer.toUnsignedLong(payload.getInt());
      pending.extentStatuses[i] = payload.getInt();
      check(pending.extentLengths[i] > 0, "an empty extent");
      check((pending.extentStatuses[i] & ~3) == 0, "base:allocation status 0x%x", pending.extentStatuses[i]);
    }
  }

  /** The request is answered: judge the answer against the protocol's rules. */
  private void finish(Pending pending) {
    pending.done = true;
    unanswered.remove(pending.request.cookie());
    tally.requestsAnswered++;
    Request request = pending.request;
    Expectation expected = pending.expected;
    if (pending.error != null) {
      tally.requestsRefused++;
      check(expected == null || expected.errnos.contains(pending.error),
          "%s failed with errno %d; the protocol asks for %s", pending, pending.error, expected);
      return;
    }
    check(expected == null || expected.successAllowed, "%s succeeded; the protocol asks for %s", pending, expected);
    switch (request.type()) {
      case Cmd.READ -> {
        check(pending.covered.cardinality() == request.length(), "%s succeeded with %d of its bytes",
            pending, pending.covered.cardinality());
        check(!request.has(CmdFlag.DF) || pending.contentChunks <= 1, "%s came in %d pieces despite DF",
            pending, pending.contentChunks);
      }
      case Cmd.BLOCK_STATUS -> {
        check(pending.statusChunks == 1, "%s succeeded without a status chunk", pending);
        long[] lengths = pending.extentLengths;
        long total = 0;
        for (long extent : lengths) {
          total += extent;
        }
        if (request.has(CmdFlag.REQ_ONE)) {
          check(lengths.length == 1 && lengths[0] <= request.length(), "%s with REQ_ONE got %d extents of %d bytes",
              pending, lengths.length, total);
        } else {
          check(total - lengths[lengths.length - 1] < request.length(), "%s got extents beyond the final one", pending);
        }
        check(total <= model.size() - request.offset(), "%s got extents past the end of the export", pending);
      }
      default -> check(pending.contentChunks == 0, "data for %s", pending);
    }
  }

  /** Checks what was read against the model, then brings the model up to date with what was written. */
  private void settle() {
    BitSet unsettled = new BitSet();
    List<Pending> writers = window.stream().filter(this::mayHaveWritten).toList();
    for (Pending writer : writers) {
      unsettled.set((int) writer.request.offset(), (int) (writer.request.offset() + writer.request.length()));
    }
    for (Pending pending : window) {
      if (pending.done && pending.error == null && pending.expected != null) {
        verify(pending, unsettled);
      }
    }
    for (Pending writer : writers) {
      Request request = writer.request;
      boolean overlapping = writers.stream().anyMatch(other -> other != writer && overlap(request, other.request));
      if (!writer.done || overlapping || request.type() == Cmd.WRITE && writer.payload == null) {
        model.forget(request.offset(), request.length());
      } else if (request.type() == Cmd.WRITE) {
        model.write(request.offset(), writer.payload);
      } else {
        // WRITE_ZEROES, and TRIM, which the memory plugin carries out by dropping pages: zeroes.
        model.zero(request.offset(), request.length());
      }
    }
    window.clear();
  }

  /** A request that changes data, may have run (answered with success, or never answered), and touches bytes. */
  private boolean mayHaveWritten(Pending pending) {
    Request request = pending.request;
    int type = request.type();
    return (type == Cmd.WRITE || type == Cmd.WRITE_ZEROES || type == Cmd.TRIM)
        && request.length() > 0 && request.fitsIn(model.size()) && pending.error == null
        && (pending.expected == null || pending.expected.successAllowed);
  }

  private static boolean overlap(Request a, Request b) {
    return a.offset() < b.offset() + b.length() && b.offset() < a.offset() + a.length();
  }

  private void verify(Pending pending, BitSet unsettled) {
    Request request = pending.request;
    if (request.type() == Cmd.READ && request.length() > 0) {
      long at = model.mismatch(request.offset(), pending.data, unsettled);
      if (at >= 0) {
        throw failure("%s read 0x%02x at offset %d, where the export holds 0x%02x", pending,
            pending.data[(int) (at - request.offset())], at, model.byteAt(at));
      }
      tally.bytesChecked += request.length();
    }
    if (request.type() == Cmd.BLOCK_STATUS) {
      long offset = request.offset();
      for (int i = 0; i < pending.extentLengths.length; i++) {
        long length = Math.min(pending.extentLengths[i], model.size() - offset);
        if ((pending.extentStatuses[i] & 2) != 0) {
          long at = model.knownNonZero(offset, length, unsettled);
          check(at < 0, "%s reports zeroes at %d+%d, but offset %d holds data", pending, offset, length, at);
        }
        offset += length;
      }
    }
  }

  // --- the end -----------------------------------------------------------------------------

  private void end(End end) throws IOException {
    if (!hungUp && end.halfClose()) {
      try {
        client.shutdownOutput();
      } catch (IOException e) {
        // Already hung up by the server; reading finds that out.
      }
      if (session == null) {
        drainHandshake();
      } else {
        while (readReply()) {
          // Reply by reply until the server hangs up.
        }
        check(owed() == 0, "hung up with %d requests unanswered", owed());
      }
    }
    if (session != null) {
      settle();
    }
  }

  private void drainHandshake() throws IOException {
    if (!garbled) {
      expectHangUp();
      return;
    }
    while (!hungUp) {
      optionReplies(-1);
    }
  }

  private void expectHangUp() throws IOException {
    if (hungUp) {
      return;
    }
    ByteBuffer more = client.readOrEnd(1);
    check(more == null, "sent 0x%02x instead of hanging up", more == null ? 0 : more.get(0));
    hungUp = true;
    tally.hangUps++;
  }

  /** Sends what the server may rightly stop reading partway: after DISC, or once the stream is garbled. */
  private void sendBlind(ByteBuffer... bytes) throws IOException {
    try {
      client.send(bytes);
    } catch (SocketTimeoutException e) {
      throw e;
    } catch (IOException e) {
      // The server hung up; what it owed is read next.
    }
  }

  // --- helpers -----------------------------------------------------------------------------

  private String utf8(ByteBuffer bytes, String what) {
    try {
      return StandardCharsets.UTF_8.newDecoder().decode(bytes).toString();
    } catch (CharacterCodingException e) {
      throw failure("%s is not UTF-8", what);
    }
  }

  private static String replyName(Integer type) {
    return type == null ? "nothing (hung up)" : type == Rep.ACK ? "ACK" : "0x" + Integer.toHexString(type);
  }

  private void check(boolean condition, String format, Object... arguments) {
    if (!condition) {
      throw failure(format, arguments);
    }
  }

  private AssertionError failure(String format, Object... arguments) {
    return new AssertionError("at " + step + ": server " + String.format(format, arguments));
  }
}
