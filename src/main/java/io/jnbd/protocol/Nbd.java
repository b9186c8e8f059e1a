package io.jnbd.protocol;

/**
 * The NBD protocol's numbers: magics, options, replies, commands, flags. Values are those of the
 * protocol specification (NetworkBlockDevice/nbd, doc/proto.md); everything on the wire is
 * big-endian.
 */
public final class Nbd {
  private Nbd() {}

  public static final long NBDMAGIC = 0x4e42444d41474943L;
  public static final long IHAVEOPT = 0x49484156454F5054L;
  public static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;
  public static final int REQUEST_MAGIC = 0x25609513;
  public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
  public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

  public static final int REQUEST_SIZE = 28;
  public static final int SIMPLE_REPLY_SIZE = 16;
  public static final int CHUNK_HEADER_SIZE = 20;
  public static final int OPTION_HEADER_SIZE = 16;
  public static final int OPTION_REPLY_HEADER_SIZE = 20;

  /** Strings (export names, queries) longer than this are refused, as the spec allows. */
  public static final int MAX_STRING = 4096;

  /** Handshake flags the server sends. */
  public static final class HandshakeFlag {
    public static final int FIXED_NEWSTYLE = 1;
    public static final int NO_ZEROES = 2;

    private HandshakeFlag() {}
  }

  /** Handshake flags the client sends back. */
  public static final class ClientFlag {
    public static final int FIXED_NEWSTYLE = 1;
    public static final int NO_ZEROES = 2;
    public static final int KNOWN = FIXED_NEWSTYLE | NO_ZEROES;

    private ClientFlag() {}
  }

  /** Option codes (NBD_OPT_*). */
  public static final class Opt {
    public static final int EXPORT_NAME = 1;
    public static final int ABORT = 2;
    public static final int LIST = 3;
    public static final int PEEK_EXPORT = 4;
    public static final int STARTTLS = 5;
    public static final int INFO = 6;
    public static final int GO = 7;
    public static final int STRUCTURED_REPLY = 8;
    public static final int LIST_META_CONTEXT = 9;
    public static final int SET_META_CONTEXT = 10;
    public static final int EXTENDED_HEADERS = 11;

    private Opt() {}

    public static String name(int option) {
      return switch (option) {
        case EXPORT_NAME -> "EXPORT_NAME";
        case ABORT -> "ABORT";
        case LIST -> "LIST";
        case PEEK_EXPORT -> "PEEK_EXPORT";
        case STARTTLS -> "STARTTLS";
        case INFO -> "INFO";
        case GO -> "GO";
        case STRUCTURED_REPLY -> "STRUCTURED_REPLY";
        case LIST_META_CONTEXT -> "LIST_META_CONTEXT";
        case SET_META_CONTEXT -> "SET_META_CONTEXT";
        case EXTENDED_HEADERS -> "EXTENDED_HEADERS";
        default -> "option " + option;
      };
    }
  }

  /** Option reply types (NBD_REP_*). Errors have bit 31 set. */
  public static final class Rep {
    public static final int ACK = 1;
    public static final int SERVER = 2;
    public static final int INFO = 3;
    public static final int META_CONTEXT = 4;
    public static final int ERR_UNSUP = 0x80000001;
    public static final int ERR_POLICY = 0x80000002;
    public static final int ERR_INVALID = 0x80000003;
    public static final int ERR_PLATFORM = 0x80000004;
    public static final int ERR_TLS_REQD = 0x80000005;
    public static final int ERR_UNKNOWN = 0x80000006;
    public static final int ERR_SHUTDOWN = 0x80000007;
    public static final int ERR_BLOCK_SIZE_REQD = 0x80000008;
    public static final int ERR_TOO_BIG = 0x80000009;

    private Rep() {}
  }

  /** Information types in NBD_REP_INFO (NBD_INFO_*). */
  public static final class Info {
    public static final int EXPORT = 0;
    public static final int NAME = 1;
    public static final int DESCRIPTION = 2;
    public static final int BLOCK_SIZE = 3;

    private Info() {}
  }

  /** Transmission flags (NBD_FLAG_*), sent with the export size. */
  public static final class TransmissionFlag {
    public static final int HAS_FLAGS = 1;
    public static final int READ_ONLY = 1 << 1;
    public static final int SEND_FLUSH = 1 << 2;
    public static final int SEND_FUA = 1 << 3;
    public static final int ROTATIONAL = 1 << 4;
    public static final int SEND_TRIM = 1 << 5;
    public static final int SEND_WRITE_ZEROES = 1 << 6;
    public static final int SEND_DF = 1 << 7;
    public static final int CAN_MULTI_CONN = 1 << 8;
    public static final int SEND_RESIZE = 1 << 9;
    public static final int SEND_CACHE = 1 << 10;
    public static final int SEND_FAST_ZERO = 1 << 11;

    private TransmissionFlag() {}
  }

  /** Commands (NBD_CMD_*). */
  public static final class Cmd {
    public static final int READ = 0;
    public static final int WRITE = 1;
    public static final int DISC = 2;
    public static final int FLUSH = 3;
    public static final int TRIM = 4;
    public static final int CACHE = 5;
    public static final int WRITE_ZEROES = 6;
    public static final int BLOCK_STATUS = 7;

    private Cmd() {}

    public static String name(int command) {
      return switch (command) {
        case READ -> "READ";
        case WRITE -> "WRITE";
        case DISC -> "DISC";
        case FLUSH -> "FLUSH";
        case TRIM -> "TRIM";
        case CACHE -> "CACHE";
        case WRITE_ZEROES -> "WRITE_ZEROES";
        case BLOCK_STATUS -> "BLOCK_STATUS";
        default -> "command " + command;
      };
    }
  }

  /** Command flags (NBD_CMD_FLAG_*). */
  public static final class CmdFlag {
    public static final int FUA = 1;
    public static final int NO_HOLE = 1 << 1;
    public static final int DF = 1 << 2;
    public static final int REQ_ONE = 1 << 3;
    public static final int FAST_ZERO = 1 << 4;
    public static final int KNOWN = FUA | NO_HOLE | DF | REQ_ONE | FAST_ZERO;

    private CmdFlag() {}
  }

  /** Structured reply chunk types (NBD_REPLY_TYPE_*) and flags. */
  public static final class Chunk {
    public static final int FLAG_DONE = 1;
    public static final int NONE = 0;
    public static final int OFFSET_DATA = 1;
    public static final int OFFSET_HOLE = 2;
    public static final int BLOCK_STATUS = 5;
    public static final int ERROR = 32769;
    public static final int ERROR_OFFSET = 32770;

    private Chunk() {}
  }

  /** The one metadata context jnbd serves, and its status bits. */
  public static final String BASE_ALLOCATION = "base:allocation";
}
