package io.jnbd.server;

import io.jnbd.api.BlockSize;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.ClientFlag;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Nbd.Opt;
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
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Writes fuzz sessions from a seeded random source. Each session follows the grammar of a valid
 * client (greeting flags, options, GO or EXPORT_NAME, bursts of requests, an ending) and breaks
 * some of its messages in ways the protocol settles: a flipped magic, an option length that is
 * huge or off by a few bytes, a name or query that overruns its option or is too long or not
 * UTF-8, counts that do not match, unknown options and commands, flags that do not apply,
 * offsets and lengths at and past the boundaries, writes whose payload is short, DISC in the
 * middle of a burst, and a cut at any byte.
 */
final class FuzzGenerator {
  /** The largest READ or WRITE the server takes (the protocol's safe maximum, which jnbd advertises). */
  static final int MAX_PAYLOAD = BlockSize.DEFAULT.maximum();
  /**
   * Bytes that replies to the requests of a burst, all but its last, may add up to: the client
   * reads nothing until it has sent the whole burst, so these replies must fit in the socket's
   * buffers, or the server would block writing them while the client blocks sending.
   */
  private static final int BURST_REPLY_BUDGET = 64 * 1024;
  private static final List<String> LIST_QUERIES =
      List.of(Nbd.BASE_ALLOCATION, "base:", "qemu:", "qemu:dirty-bitmap:sda", "x-fuzz:probe");
  private static final List<String> SET_QUERIES =
      List.of(Nbd.BASE_ALLOCATION, "base:", "qemu:dirty-bitmap:sda", "x-fuzz:probe");
  private static final String NAME_CHARACTERS = "abcxyz-_.09/é€😀";
  /** A lone continuation byte, a lead byte cut short, a byte UTF-8 never uses, an overlong form, a surrogate. */
  private static final byte[][] NOT_UTF8 = {
      {(byte) 0x80}, {(byte) 0xC3}, {(byte) 0xC3, 0x28}, {(byte) 0xFF}, {(byte) 0xC0, (byte) 0xAF},
      {(byte) 0xED, (byte) 0xA0, (byte) 0x80}};

  private final SplittableRandom random;
  private final int exportSize;
  private final Set<Long> cookies = new HashSet<>();
  private boolean structuredReplies;
  /** The export name a successful SET_META_CONTEXT selected base:allocation for; null for none. */
  private String contextExport;
  /** The export name of the SET_META_CONTEXT being built, which takes effect only if it is sent intact. */
  private String proposedContextExport;

  private FuzzGenerator(SplittableRandom random, int exportSize) {
    this.random = random;
    this.exportSize = exportSize;
  }

  /** A random session. */
  static FuzzScript session(SplittableRandom random, int exportSize) {
    return new FuzzGenerator(random, exportSize).session();
  }

  /**
   * A well-behaved session touching every phase and command, for cutting at every byte: fixed
   * newstyle, structured replies, base:allocation, GO, one request of each kind, DISC.
   */
  static FuzzScript canonical(int exportSize) {
    FuzzGenerator generator = new FuzzGenerator(new SplittableRandom(0), exportSize);
    byte[] data = new byte[100];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) (i * 7 + 1);
    }
    List<Message> requests = List.of(
        new Command(new Request(0, Cmd.WRITE, 1, 0, data.length), data),
        new Command(new Request(0, Cmd.READ, 2, 0, data.length), new byte[0]),
        new Command(new Request(0, Cmd.BLOCK_STATUS, 3, 0, 4096), new byte[0]),
        new Command(new Request(0, Cmd.WRITE_ZEROES, 4, 4096, 512), new byte[0]),
        new Command(new Request(CmdFlag.FUA, Cmd.TRIM, 5, 8192, 512), new byte[0]),
        new Command(new Request(0, Cmd.FLUSH, 6, 0, 0), new byte[0]),
        new Command(new Request(0, Cmd.CACHE, 7, 0, 4096), new byte[0]));
    List<Step> steps = new ArrayList<>();
    steps.add(new ClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES, false));
    steps.add(generator.settle(generator.structuredReply()));
    steps.add(generator.settle(generator.metaContext(Opt.SET_META_CONTEXT, "", List.of(Nbd.BASE_ALLOCATION))));
    steps.add(generator.go("", new int[] {Nbd.Info.NAME, Nbd.Info.BLOCK_SIZE}));
    steps.add(new Burst(requests));
    steps.add(new Burst(List.of(new Command(new Request(0, Cmd.DISC, 8, 0, 0), new byte[0]))));
    steps.add(new End(true));
    return new FuzzScript(steps);
  }

  private FuzzScript session() {
    List<Step> steps = new ArrayList<>();
    int roll = random.nextInt(100);
    if (roll < 3) {
      int unknownFlag = 1 << (2 + random.nextInt(30));
      steps.add(new ClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES | unknownFlag, true));
    } else {
      int flags = roll < 8 ? 0 : roll < 18 ? ClientFlag.FIXED_NEWSTYLE : ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;
      steps.add(new ClientFlags(flags, false));
      // A client without FIXED_NEWSTYLE knows no option but EXPORT_NAME.
      Transmission transmission = flags == 0 ? exportName(steps, flags) : handshake(steps, flags);
      if (transmission != null) {
        transmit(steps);
      }
    }
    if (!(steps.getLast() instanceof End)) {
      steps.add(end());
    }
    FuzzScript script = new FuzzScript(steps);
    if (random.nextInt(10) == 0) {
      return script.cutAfter(random.nextInt(script.length() + 1), end());
    }
    return script;
  }

  private End end() {
    return new End(random.nextBoolean());
  }

  // --- handshake ---------------------------------------------------------------------------

  /** Options, then the step into transmission; returns null when the session ends before it. */
  private Transmission handshake(List<Step> steps, int flags) {
    // Most real clients start so: structured replies, then base:allocation.
    if (random.nextInt(10) < 6) {
      steps.add(settle(structuredReply()));
      if (random.nextBoolean()) {
        List<String> queries = new ArrayList<>(queries(SET_QUERIES));
        queries.add(random.nextInt(queries.size() + 1), Nbd.BASE_ALLOCATION);
        steps.add(settle(metaContext(Opt.SET_META_CONTEXT, random.nextInt(3) > 0 ? "" : name(), queries)));
      }
    }
    int options = random.nextInt(6);
    for (int i = 0; i < options; i++) {
      Step step = option();
      steps.add(step);
      if (step instanceof Garble) {
        // Whatever the server makes of the rest, the client plays on as if all were well.
        steps.add(new Garble("then GO", go(name(), infoTypes()).bytes()));
        return null;
      }
      if (step instanceof Option option && option.outcome() == OptionOutcome.DROPPED) {
        return null;
      }
    }
    int roll = random.nextInt(100);
    if (roll < 68) {
      Option go = go(goName(), infoTypes());
      steps.add(go);
      return go.transmission();
    }
    if (roll < 85) {
      return exportName(steps, flags);
    }
    if (roll < 90) {
      steps.add(option("ABORT", Opt.ABORT, new byte[0], OptionOutcome.DROPPED));
    }
    return null;
  }

  private Step option() {
    int roll = random.nextInt(100);
    Option valid;
    if (roll < 12) {
      valid = option("LIST", Opt.LIST, new byte[0], OptionOutcome.ACK);
    } else if (roll < 24) {
      valid = structuredReply();
    } else if (roll < 38) {
      valid = metaContext(Opt.LIST_META_CONTEXT, name(), queries(LIST_QUERIES));
    } else if (roll < 54) {
      valid = metaContext(Opt.SET_META_CONTEXT, random.nextInt(3) > 0 ? "" : name(), queries(SET_QUERIES));
    } else if (roll < 68) {
      valid = info(Opt.INFO, name(), infoTypes());
    } else if (roll < 74) {
      valid = option("STARTTLS", Opt.STARTTLS, new byte[0], OptionOutcome.ERROR);
    } else if (roll < 86) {
      int code = unknownOption();
      valid = option(Opt.name(code), code, randomBytes(random.nextInt(65)), OptionOutcome.UNSUPPORTED);
    } else if (roll < 96) {
      // GO with bad contents: only broken ones here, since a good GO ends the handshake.
      return brokenPayload(info(Opt.GO, goName(), infoTypes()));
    } else {
      return option("ABORT with data", Opt.ABORT, randomBytes(1 + random.nextInt(16)), OptionOutcome.DROPPED);
    }
    if (random.nextInt(10) < 3) {
      // An unknown option's data is opaque, so only its header can be broken.
      boolean opaque = valid.outcome() == OptionOutcome.UNSUPPORTED;
      return opaque || random.nextInt(3) == 0 ? brokenHeader(valid) : brokenPayload(valid);
    }
    return settle(valid);
  }

  /** Applies what an option that reaches the server intact changes in the handshake's state. */
  private Option settle(Option sent) {
    if (sent.option() == Opt.STRUCTURED_REPLY && sent.outcome() == OptionOutcome.ACK) {
      structuredReplies = true;
    }
    if (sent.option() == Opt.SET_META_CONTEXT) {
      // Every SET_META_CONTEXT replaces the selection, also one that fails.
      boolean selected = sent.outcome() == OptionOutcome.ACK && sent.contexts().contains(Nbd.BASE_ALLOCATION);
      contextExport = selected ? proposedContextExport : null;
    }
    return sent;
  }

  private Option structuredReply() {
    // A second request may be refused or acknowledged again.
    OptionOutcome outcome = structuredReplies ? OptionOutcome.ANSWERED : OptionOutcome.ACK;
    return option("STRUCTURED_REPLY", Opt.STRUCTURED_REPLY, new byte[0], outcome);
  }

  private Option metaContext(int option, String exportName, List<String> queries) {
    boolean set = option == Opt.SET_META_CONTEXT;
    Set<String> contexts = Set.of();
    boolean baseAllocation = set
        ? queries.contains(Nbd.BASE_ALLOCATION)
        : queries.isEmpty() || queries.contains(Nbd.BASE_ALLOCATION) || queries.contains("base:");
    if (baseAllocation) {
      contexts = Set.of(Nbd.BASE_ALLOCATION);
    }
    OptionOutcome outcome;
    if (structuredReplies) {
      outcome = OptionOutcome.ACK;
    } else {
      // SET needs structured replies (SHOULD be refused); LIST MAY be refused without them.
      outcome = set ? OptionOutcome.ERROR : OptionOutcome.ANSWERED;
    }
    if (set) {
      proposedContextExport = exportName;
    }
    List<byte[]> encoded = queries.stream().map(FuzzGenerator::utf8).toList();
    String label = Opt.name(option) + " '" + abbreviate(exportName) + "' " + queries;
    return new Option(label, option(option, metaContextData(utf8(exportName), encoded)), option, outcome,
        outcome == OptionOutcome.ERROR ? null : contexts, null);
  }

  private Option info(int option, String exportName, int[] infoTypes) {
    String label = Opt.name(option) + " '" + abbreviate(exportName) + "' infos " + Arrays.toString(infoTypes);
    Transmission transmission = option == Opt.GO
        ? new Transmission(structuredReplies, structuredReplies && exportName.equals(contextExport), false)
        : null;
    return new Option(label, option(option, infoData(utf8(exportName), infoTypes)), option, OptionOutcome.ACK, null,
        transmission);
  }

  private Option go(String exportName, int[] infoTypes) {
    return info(Opt.GO, exportName, infoTypes);
  }

  /** EXPORT_NAME, intact (transmission follows) or with a name the server must hang up on. */
  private Transmission exportName(List<Step> steps, int flags) {
    if (random.nextInt(10) == 0) {
      byte[] name = random.nextBoolean() ? longName() : invalidUtf8();
      steps.add(new Option("EXPORT_NAME, bad name of " + name.length + " bytes", option(Opt.EXPORT_NAME, name),
          Opt.EXPORT_NAME, OptionOutcome.DROPPED, null, null));
      return null;
    }
    String name = goName();
    boolean noZeroes = (flags & ClientFlag.NO_ZEROES) != 0;
    Transmission transmission =
        new Transmission(structuredReplies, structuredReplies && name.equals(contextExport), !noZeroes);
    steps.add(new Option("EXPORT_NAME '" + abbreviate(name) + "'", option(Opt.EXPORT_NAME, utf8(name)),
        Opt.EXPORT_NAME, OptionOutcome.ACK, null, transmission));
    return transmission;
  }

  /** The same option with a broken header: the server must hang up, refuse it, or lose step. */
  private Step brokenHeader(Option valid) {
    byte[] bytes = valid.bytes().clone();
    int dataLength = bytes.length - Nbd.OPTION_HEADER_SIZE;
    switch (random.nextInt(4)) {
      case 0 -> {
        int bit = random.nextInt(64);
        bytes[bit / 8] ^= (byte) (0x80 >>> (bit % 8));
        return new Option(valid.label() + " with option magic bit " + bit + " flipped", bytes, valid.option(),
            OptionOutcome.DROPPED, null, null);
      }
      case 1 -> {
        long huge = pick(Negotiation.MAX_OPTION_LENGTH + 1L, 0x7FFFFFFFL, 0x80000000L, 0xFFFFFFFFL,
            Negotiation.MAX_OPTION_LENGTH + 1L + random.nextInt(1 << 30));
        ByteBuffer.wrap(bytes).putInt(12, (int) huge);
        return new Option(valid.label() + " announcing " + huge + " bytes", bytes, valid.option(),
            OptionOutcome.DROPPED, null, null);
      }
      case 2 -> {
        int code = unknownOption();
        ByteBuffer.wrap(bytes).putInt(8, code);
        return new Option(valid.label() + " sent as option " + Integer.toUnsignedString(code), bytes, code,
            OptionOutcome.UNSUPPORTED, null, null);
      }
      default -> {
        int delta = random.nextBoolean() ? 1 + random.nextInt(8) : -1 - random.nextInt(8);
        int declared = dataLength + delta;
        ByteBuffer.wrap(bytes).putInt(12, declared);
        String label = valid.label() + " announcing " + Integer.toUnsignedString(declared) + " of its " + dataLength + " bytes";
        if (declared < 0) {
          // Below zero is a huge unsigned length.
          return new Option(label, bytes, valid.option(), OptionOutcome.DROPPED, null, null);
        }
        return new Garble(label, bytes);
      }
    }
  }

  /** The same option with contents the server must refuse (and go on). */
  private Option brokenPayload(Option valid) {
    int option = valid.option();
    byte[] data = Arrays.copyOfRange(valid.bytes(), Nbd.OPTION_HEADER_SIZE, valid.bytes().length);
    String why;
    byte[] broken;
    switch (option) {
      case Opt.INFO, Opt.GO -> {
        byte[] name = utf8(name());
        int[] types = infoTypes();
        int rest = name.length + 2 + 2 * types.length;
        switch (random.nextInt(6)) {
          case 0 -> {
            long overrun = pick(rest + 1L, rest + 1L + random.nextInt(1000), 0x7FFFFFFFL, 0x80000000L, 0xFFFFFFFFL);
            broken = ByteBuffer.wrap(infoData(name, types)).putInt(0, (int) overrun).array();
            why = "a name length of " + overrun + " that overruns the option";
          }
          case 1 -> {
            broken = infoData(longName(), types);
            why = "a name longer than " + Nbd.MAX_STRING + " bytes";
          }
          case 2 -> {
            broken = infoData(invalidUtf8(), types);
            why = "a name that is not UTF-8";
          }
          case 3 -> {
            int count = types.length > 0 && random.nextBoolean() ? types.length - 1 : types.length + 1 + random.nextInt(5);
            broken = ByteBuffer.wrap(infoData(name, types)).putShort(4 + name.length, (short) count).array();
            why = "an information count of " + count + " for " + types.length + " requests";
          }
          case 4 -> {
            broken = concat(infoData(name, types), randomBytes(1 + random.nextInt(7)));
            why = "trailing bytes";
          }
          default -> {
            broken = shortened(data);
            why = "its last bytes cut off";
          }
        }
      }
      case Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT -> {
        byte[] name = utf8(name());
        List<byte[]> queries = new ArrayList<>(queries(LIST_QUERIES).stream().map(FuzzGenerator::utf8).toList());
        byte[] good = metaContextData(name, queries);
        switch (random.nextInt(9)) {
          case 0 -> {
            long overrun = pick(good.length - 3L, 0x7FFFFFFFL, 0x80000000L, 0xFFFFFFFFL);
            broken = ByteBuffer.wrap(good).putInt(0, (int) overrun).array();
            why = "a name length of " + overrun + " that overruns the option";
          }
          case 1 -> {
            broken = metaContextData(longName(), queries);
            why = "a name longer than " + Nbd.MAX_STRING + " bytes";
          }
          case 2 -> {
            broken = metaContextData(invalidUtf8(), queries);
            why = "a name that is not UTF-8";
          }
          case 3 -> {
            long count = pick(queries.size() + 1L, queries.size() + 1L + random.nextInt(100), 0x7FFFFFFFL, 0xFFFFFFFFL);
            broken = ByteBuffer.wrap(good).putInt(4 + name.length, (int) count).array();
            why = "a query count of " + Long.toUnsignedString(count) + " for " + queries.size() + " queries";
          }
          case 4 -> {
            broken = concat(good, randomBytes(1 + random.nextInt(7)));
            why = "trailing bytes";
          }
          case 5 -> {
            queries.add(utf8("x-fuzz:"));
            byte[] withLast = metaContextData(name, queries);
            // The last query's length field claims more than is left.
            broken = ByteBuffer.wrap(withLast).putInt(withLast.length - 7 - 4, 8 + random.nextInt(100)).array();
            why = "a query that overruns the option";
          }
          case 6 -> {
            queries.add(concat(utf8("x-fuzz:"), longName()));
            broken = metaContextData(name, queries);
            why = "a query longer than " + Nbd.MAX_STRING + " bytes";
          }
          case 7 -> {
            queries.add(invalidUtf8());
            broken = metaContextData(name, queries);
            why = "a query that is not UTF-8";
          }
          default -> {
            broken = shortened(good);
            why = "its last bytes cut off";
          }
        }
      }
      default -> {
        // LIST, STRUCTURED_REPLY and STARTTLS take no data.
        broken = concat(data, randomBytes(1 + random.nextInt(16)));
        why = broken.length + " bytes of data it does not take";
      }
    }
    String label = Opt.name(option) + " with " + why;
    if (option == Opt.SET_META_CONTEXT) {
      return settle(new Option(label, option(option, broken), option, OptionOutcome.ERROR, null, null));
    }
    return new Option(label, option(option, broken), option, OptionOutcome.ERROR, null, null);
  }

  private byte[] shortened(byte[] data) {
    return Arrays.copyOf(data, data.length - 1 - random.nextInt(Math.min(data.length, 8)));
  }

  /** The export name for GO: mostly the one base:allocation was selected for, if any. */
  private String goName() {
    return contextExport != null && random.nextInt(5) > 0 ? contextExport : name();
  }

  private String name() {
    int roll = random.nextInt(10);
    if (roll < 5) {
      return "";
    }
    if (roll < 7) {
      return "fuzz";
    }
    if (roll < 9) {
      StringBuilder name = new StringBuilder();
      int length = 1 + random.nextInt(40);
      while (name.length() < length) {
        name.appendCodePoint(NAME_CHARACTERS.codePointAt(NAME_CHARACTERS.offsetByCodePoints(0,
            random.nextInt(NAME_CHARACTERS.codePointCount(0, NAME_CHARACTERS.length())))));
      }
      return name.toString();
    }
    return "n".repeat(100 + random.nextInt(Nbd.MAX_STRING - 99));
  }

  private byte[] longName() {
    return utf8("n".repeat(Nbd.MAX_STRING + 1 + random.nextInt(2000)));
  }

  private byte[] invalidUtf8() {
    return concat(utf8("bad"), NOT_UTF8[random.nextInt(NOT_UTF8.length)]);
  }

  private int[] infoTypes() {
    int[] types = new int[random.nextInt(5)];
    for (int i = 0; i < types.length; i++) {
      types[i] = random.nextInt(10) < 8 ? random.nextInt(4) : random.nextInt(1 << 16);
    }
    return types;
  }

  private List<String> queries(List<String> pool) {
    List<String> queries = new ArrayList<>();
    int count = random.nextInt(4);
    for (int i = 0; i < count; i++) {
      queries.add(pool.get(random.nextInt(pool.size())));
    }
    return queries;
  }

  private int unknownOption() {
    // PEEK_EXPORT is withdrawn; EXTENDED_HEADERS belongs here only while jnbd does not offer it.
    return (int) pick(0, Opt.PEEK_EXPORT, Opt.EXTENDED_HEADERS, 12 + random.nextInt(1000), 0x7FFFFFFFL,
        0x80000000L, 0xFFFFFFFFL, 12 + random.nextInt(Integer.MAX_VALUE - 12));
  }

  private static Option option(String label, int option, byte[] data, OptionOutcome outcome) {
    return new Option(label, option(option, data), option, outcome, null, null);
  }

  private static byte[] option(int option, byte[] data) {
    return ByteBuffer.allocate(Nbd.OPTION_HEADER_SIZE + data.length)
        .putLong(Nbd.IHAVEOPT).putInt(option).putInt(data.length).put(data).array();
  }

  private static byte[] infoData(byte[] name, int[] types) {
    ByteBuffer data = ByteBuffer.allocate(4 + name.length + 2 + 2 * types.length);
    data.putInt(name.length).put(name).putShort((short) types.length);
    for (int type : types) {
      data.putShort((short) type);
    }
    return data.array();
  }

  private static byte[] metaContextData(byte[] name, List<byte[]> queries) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(ByteBuffer.allocate(4).putInt(name.length).array());
    out.writeBytes(name);
    out.writeBytes(ByteBuffer.allocate(4).putInt(queries.size()).array());
    for (byte[] query : queries) {
      out.writeBytes(ByteBuffer.allocate(4).putInt(query.length).array());
      out.writeBytes(query);
    }
    return out.toByteArray();
  }

  // --- transmission ------------------------------------------------------------------------

  private void transmit(List<Step> steps) {
    int bursts = 1 + random.nextInt(4);
    for (int i = 0; i < bursts; i++) {
      List<Message> messages = new ArrayList<>();
      boolean over = burst(messages);
      boolean lastBurst = over || i == bursts - 1;
      if (lastBurst && !over && random.nextInt(10) < 4) {
        // Disconnect politely, pipelined behind the burst or on its own.
        if (random.nextBoolean()) {
          messages.add(disc());
        } else {
          steps.add(new Burst(messages));
          messages = new ArrayList<>(List.of(disc()));
        }
      }
      steps.add(new Burst(messages));
      if (over) {
        return;
      }
    }
  }

  /** Fills one burst; returns true when it leaves the connection unusable (DISC, bad magic, a garbled stream). */
  private boolean burst(List<Message> messages) {
    int roll = random.nextInt(100);
    int count = roll < 60 ? 1 + random.nextInt(4) : roll < 90 ? 5 + random.nextInt(12) : 17 + random.nextInt(32);
    int replyBudget = BURST_REPLY_BUDGET;
    for (int i = 0; i < count; i++) {
      boolean last = i == count - 1;
      int kind = random.nextInt(100);
      if (kind < 1) {
        messages.add(disc());
        // Anything after DISC must be ignored: the client broke the rule, not the server.
        blindTail(messages);
        return true;
      }
      if (kind < 2) {
        messages.add(badMagic(command(false, replyBudget)));
        blindTail(messages);
        return true;
      }
      if (kind < 3) {
        messages.add(garbledWrite());
        blindTail(messages);
        return true;
      }
      Message message = command(last, replyBudget);
      messages.add(message);
      if (message instanceof Partial) {
        return true;
      }
      Request request = ((Command) message).request();
      if (request.type() == Cmd.READ && request.fitsIn(exportSize)) {
        replyBudget -= (int) request.length();
      }
    }
    return false;
  }

  private void blindTail(List<Message> messages) {
    int more = random.nextInt(4);
    for (int i = 0; i < more; i++) {
      messages.add(command(false, 0));
    }
  }

  private Command disc() {
    return new Command(new Request(0, Cmd.DISC, cookie(), 0, 0), new byte[0]);
  }

  private BadMagic badMagic(Message victim) {
    byte[] bytes = victim.bytes().clone();
    int magic = random.nextBoolean()
        ? Nbd.REQUEST_MAGIC ^ (1 << random.nextInt(32))
        // Other magics of the protocol, the extended request's among them (never negotiated here).
        : (int) pick(Nbd.SIMPLE_REPLY_MAGIC, Nbd.STRUCTURED_REPLY_MAGIC, 0x21e41c71, 0, 0xFFFFFFFFL);
    ByteBuffer.wrap(bytes).putInt(0, magic);
    return new BadMagic(bytes);
  }

  /** A WRITE whose payload is shorter or longer than its header says, with more requests after it. */
  private Garble garbledWrite() {
    int length = 1 + random.nextInt(4096);
    long offset = random.nextInt(exportSize - length + 1);
    int sent = random.nextBoolean() ? random.nextInt(length) : length + 1 + random.nextInt(64);
    Request request = new Request(0, Cmd.WRITE, cookie(), offset, length);
    ByteBuffer bytes = ByteBuffer.allocate(Nbd.REQUEST_SIZE + sent);
    request.encode(bytes);
    bytes.put(randomBytes(sent));
    return new Garble(request + " cookie=" + Long.toUnsignedString(request.cookie()) + " with " + sent + " payload bytes",
        bytes.array());
  }

  /**
   * A request, mostly valid. Only the last one of a burst may have a large reply or payload;
   * the others keep their replies within {@code replyBudget}. A WRITE longer than the export
   * mostly becomes a {@link Partial}, after which the client stops.
   */
  private Message command(boolean last, int replyBudget) {
    int type = commandType();
    int flags = flags(type);
    long offset;
    long length;
    if (type == Cmd.FLUSH && random.nextInt(10) > 0) {
      offset = 0;
      length = 0;
    } else if (random.nextInt(4) > 0) {
      length = inRangeLength(type == Cmd.READ && !last ? Math.min(4096, replyBudget) : exportSize);
      offset = inRangeOffset(length);
    } else {
      offset = random.nextInt(3) == 0 ? inRangeOffset(0) : boundaryOffset();
      length = random.nextInt(3) == 0 ? inRangeLength(4096) : boundaryLength();
    }
    Request request = new Request(flags, type, cookie(), offset, length);
    boolean bigReply = type == Cmd.READ && request.fitsIn(exportSize) && length > Math.min(4096, replyBudget);
    boolean bigPayload = type == Cmd.WRITE && length > 65536;
    if (!last && (bigReply || bigPayload)) {
      return command(false, replyBudget);
    }
    if (type != Cmd.WRITE) {
      return new Command(request, new byte[0]);
    }
    if (length <= exportSize) {
      return new Command(request, randomBytes((int) length));
    }
    if (length <= MAX_PAYLOAD + 4096L && random.nextInt(4) == 0) {
      // Refused, but the payload must still be read off the wire; its contents do not matter.
      // (Rarely: 32 MiB a time is most of what a session costs.)
      return new Command(request, new byte[(int) length]);
    }
    return new Partial(request + " cookie=" + Long.toUnsignedString(request.cookie()),
        concat(new Command(request, new byte[0]).bytes(), randomBytes(random.nextInt(4096))));
  }

  private int commandType() {
    int roll = random.nextInt(100);
    if (roll < 30) return Cmd.READ;
    if (roll < 55) return Cmd.WRITE;
    if (roll < 62) return Cmd.TRIM;
    if (roll < 71) return Cmd.WRITE_ZEROES;
    if (roll < 77) return Cmd.FLUSH;
    if (roll < 83) return Cmd.CACHE;
    if (roll < 97) return Cmd.BLOCK_STATUS;
    // Unknown commands, RESIZE (an extension never negotiated here) among them.
    return (int) pick(8, 9, 8 + random.nextInt(248), 0xFFFF, 8 + random.nextInt(0xFFF8));
  }

  /** The flags a client would send with the command, sometimes one that does not apply or is unknown. */
  private int flags(int type) {
    int flags = switch (type) {
      case Cmd.READ -> random.nextInt(10) < 2 ? CmdFlag.DF : 0;
      case Cmd.WRITE, Cmd.TRIM -> random.nextInt(4) == 0 ? CmdFlag.FUA : 0;
      case Cmd.WRITE_ZEROES -> (random.nextBoolean() ? CmdFlag.FUA : 0) | (random.nextBoolean() ? CmdFlag.NO_HOLE : 0)
          | (random.nextInt(4) == 0 ? CmdFlag.FAST_ZERO : 0);
      case Cmd.BLOCK_STATUS -> random.nextBoolean() ? CmdFlag.REQ_ONE : 0;
      default -> 0;
    };
    int roll = random.nextInt(100);
    if (roll < 6) {
      flags ^= 1 << random.nextInt(16);
    } else if (roll < 8) {
      flags = random.nextInt(1 << 16);
    } else if (roll < 12) {
      // Clients are known to send FUA with commands that write nothing.
      flags |= CmdFlag.FUA;
    }
    return flags;
  }

  private long inRangeLength(int limit) {
    int roll = random.nextInt(100);
    if (roll < 3 || limit < 1) {
      return 0;
    }
    if (roll < 65) {
      return 1 + random.nextInt(Math.min(4096, limit));
    }
    if (roll < 90) {
      int sectors = Math.max(1, Math.min(128, limit / 512));
      return Math.min(limit, 512L * (1 + random.nextInt(sectors)));
    }
    return 1 + random.nextInt(limit);
  }

  private long inRangeOffset(long length) {
    long offset = random.nextLong(exportSize - length + 1);
    int roll = random.nextInt(10);
    if (roll < 3) {
      return offset & ~511L;
    }
    return roll < 4 ? exportSize - length : offset;
  }

  private long boundaryOffset() {
    return pick(0, exportSize, exportSize - 1L, exportSize + 1L, 1L << 32, Long.MAX_VALUE, Long.MIN_VALUE,
        -1, -512, random.nextLong());
  }

  private long boundaryLength() {
    return pick(0, 1, exportSize, exportSize + 1L, MAX_PAYLOAD, MAX_PAYLOAD + 1L, 0x7FFFFFFFL, 0x80000000L,
        0xFFFFFFFFL, random.nextLong(1L << 32));
  }

  private long cookie() {
    while (true) {
      long cookie = random.nextInt(20) == 0 ? pick(0, -1, Long.MIN_VALUE, Long.MAX_VALUE) : random.nextLong();
      if (cookies.add(cookie)) {
        return cookie;
      }
    }
  }

  // --- helpers -----------------------------------------------------------------------------

  private long pick(long... values) {
    return values[random.nextInt(values.length)];
  }

  private byte[] randomBytes(int length) {
    byte[] bytes = new byte[length];
    random.nextBytes(bytes);
    return bytes;
  }

  private static byte[] concat(byte[] first, byte[] second) {
    byte[] both = Arrays.copyOf(first, first.length + second.length);
    System.arraycopy(second, 0, both, first.length, second.length);
    return both;
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  private static String abbreviate(String name) {
    return name.length() <= 40 ? name : name.substring(0, 20) + "...(" + name.length() + " chars)";
  }
}
