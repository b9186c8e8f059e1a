package io.jnbd.protocol;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** Encoders for everything the server sends. Each writes at the buffer's position. */
public final class Replies {
  private Replies() {}

  public static void simpleReply(ByteBuffer out, int error, long cookie) {
    out.putInt(Nbd.SIMPLE_REPLY_MAGIC).putInt(error).putLong(cookie);
  }

  public static void chunkHeader(ByteBuffer out, int flags, int type, long cookie, int length) {
    out.putInt(Nbd.STRUCTURED_REPLY_MAGIC)
        .putShort((short) flags)
        .putShort((short) type)
        .putLong(cookie)
        .putInt(length);
  }

  /** An ERROR chunk, complete with its payload; the message is cut to fit the protocol's u16. */
  public static ByteBuffer errorChunk(long cookie, int error, String message) {
    byte[] text = utf8Prefix(message, 4096);
    ByteBuffer out = ByteBuffer.allocate(Nbd.CHUNK_HEADER_SIZE + 6 + text.length);
    chunkHeader(out, Nbd.Chunk.FLAG_DONE, Nbd.Chunk.ERROR, cookie, 6 + text.length);
    out.putInt(error).putShort((short) text.length).put(text);
    return out.flip();
  }

  public static void optionReplyHeader(ByteBuffer out, int option, int type, int length) {
    out.putLong(Nbd.OPTION_REPLY_MAGIC).putInt(option).putInt(type).putInt(length);
  }

  /** A complete option reply with an arbitrary payload. */
  public static ByteBuffer optionReply(int option, int type, byte[] payload) {
    ByteBuffer out = ByteBuffer.allocate(Nbd.OPTION_REPLY_HEADER_SIZE + payload.length);
    optionReplyHeader(out, option, type, payload.length);
    return out.put(payload).flip();
  }

  /** A complete option error reply carrying a message for the client's logs. */
  public static ByteBuffer optionError(int option, int type, String message) {
    return optionReply(option, type, utf8Prefix(message, 4096));
  }

  /** NBD_REP_SERVER: one export in a listing. */
  public static ByteBuffer server(String name, String description) {
    byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
    byte[] descriptionBytes = description.getBytes(StandardCharsets.UTF_8);
    ByteBuffer payload = ByteBuffer.allocate(4 + nameBytes.length + descriptionBytes.length);
    payload.putInt(nameBytes.length).put(nameBytes).put(descriptionBytes);
    return optionReply(Nbd.Opt.LIST, Nbd.Rep.SERVER, payload.array());
  }

  public static ByteBuffer infoExport(int option, long size, int transmissionFlags) {
    ByteBuffer payload = ByteBuffer.allocate(12);
    payload.putShort((short) Nbd.Info.EXPORT).putLong(size).putShort((short) transmissionFlags);
    return optionReply(option, Nbd.Rep.INFO, payload.array());
  }

  public static ByteBuffer infoText(int option, int infoType, String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    ByteBuffer payload = ByteBuffer.allocate(2 + bytes.length);
    payload.putShort((short) infoType).put(bytes);
    return optionReply(option, Nbd.Rep.INFO, payload.array());
  }

  public static ByteBuffer infoBlockSize(int option, int minimum, int preferred, int maximum) {
    ByteBuffer payload = ByteBuffer.allocate(14);
    payload.putShort((short) Nbd.Info.BLOCK_SIZE).putInt(minimum).putInt(preferred).putInt(maximum);
    return optionReply(option, Nbd.Rep.INFO, payload.array());
  }

  public static ByteBuffer metaContext(int option, int id, String name) {
    byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
    ByteBuffer payload = ByteBuffer.allocate(4 + bytes.length);
    payload.putInt(id).put(bytes);
    return optionReply(option, Nbd.Rep.META_CONTEXT, payload.array());
  }

  /** The reply to NBD_OPT_EXPORT_NAME: size, flags and, unless NO_ZEROES, 124 zero bytes. */
  public static ByteBuffer exportNameReply(long size, int transmissionFlags, boolean noZeroes) {
    ByteBuffer out = ByteBuffer.allocate(10 + (noZeroes ? 0 : 124));
    out.putLong(size).putShort((short) transmissionFlags);
    return out.position(out.capacity()).flip();
  }

  private static byte[] utf8Prefix(String text, int maxBytes) {
    byte[] bytes = (text == null ? "" : text).getBytes(StandardCharsets.UTF_8);
    if (bytes.length <= maxBytes) {
      return bytes;
    }
    int cut = maxBytes;
    while (cut > 0 && (bytes[cut] & 0xC0) == 0x80) {
      cut--;
    }
    return java.util.Arrays.copyOf(bytes, cut);
  }
}
