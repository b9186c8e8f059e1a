package io.jnbd.protocol;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Parsers for the payloads of the options that carry structured data. Each checks that the
 * declared lengths add up to exactly the payload, and throws {@link Malformed} otherwise, which
 * the server answers with NBD_REP_ERR_INVALID (or ERR_TOO_BIG) while the connection goes on.
 */
public final class OptionData {
  private OptionData() {}

  /** A payload that does not parse; {@link #replyType} is the NBD_REP_ERR_* to answer with. */
  public static final class Malformed extends Exception {
    private static final long serialVersionUID = 1L;
    private final int replyType;

    public Malformed(int replyType, String message) {
      super(message);
      this.replyType = replyType;
    }

    public int replyType() {
      return replyType;
    }
  }

  /** NBD_OPT_INFO and NBD_OPT_GO: an export name and the information types requested. */
  public record InfoRequest(String exportName, List<Integer> infoTypes) {}

  /** NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
  public record MetaContextRequest(String exportName, List<String> queries) {}

  public static InfoRequest infoRequest(ByteBuffer data) throws Malformed {
    String name = string(data, "export name");
    if (data.remaining() < 2) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, "missing information request count");
    }
    int count = Short.toUnsignedInt(data.getShort());
    if (data.remaining() != 2L * count) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, "information request count does not match the option length");
    }
    List<Integer> types = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      types.add(Short.toUnsignedInt(data.getShort()));
    }
    return new InfoRequest(name, types);
  }

  public static MetaContextRequest metaContextRequest(ByteBuffer data) throws Malformed {
    String name = string(data, "export name");
    if (data.remaining() < 4) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, "missing query count");
    }
    long count = Integer.toUnsignedLong(data.getInt());
    if (count > data.remaining() / 4) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, "query count does not match the option length");
    }
    List<String> queries = new ArrayList<>((int) count);
    for (long i = 0; i < count; i++) {
      queries.add(string(data, "query"));
    }
    if (data.hasRemaining()) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, "trailing bytes after the queries");
    }
    return new MetaContextRequest(name, queries);
  }

  /** A u32 length followed by that many bytes of UTF-8. */
  private static String string(ByteBuffer data, String what) throws Malformed {
    if (data.remaining() < 4) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, "missing " + what + " length");
    }
    long length = Integer.toUnsignedLong(data.getInt());
    if (length > data.remaining()) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, what + " overruns the option");
    }
    if (length > Nbd.MAX_STRING) {
      throw new Malformed(Nbd.Rep.ERR_TOO_BIG, what + " longer than " + Nbd.MAX_STRING + " bytes");
    }
    ByteBuffer bytes = data.slice(data.position(), (int) length);
    data.position(data.position() + (int) length);
    return utf8(bytes, what);
  }

  /** The data of EXPORT_NAME: the whole option is the name, held to the same rules as others. */
  public static String exportName(ByteBuffer data) throws Malformed {
    if (data.remaining() > Nbd.MAX_STRING) {
      throw new Malformed(Nbd.Rep.ERR_TOO_BIG, "export name longer than " + Nbd.MAX_STRING + " bytes");
    }
    return utf8(data, "export name");
  }

  private static String utf8(ByteBuffer bytes, String what) throws Malformed {
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(bytes)
          .toString();
    } catch (CharacterCodingException e) {
      throw new Malformed(Nbd.Rep.ERR_INVALID, what + " is not valid UTF-8");
    }
  }
}
