package io.jnbd.protocol;

import java.nio.ByteBuffer;

/**
 * One transmission-phase request header.
 *
 * @param flags command flags (NBD_CMD_FLAG_*)
 * @param type the command (NBD_CMD_*)
 * @param cookie opaque, echoed in the reply
 * @param offset unsigned 64-bit offset; values past {@link Long#MAX_VALUE} are negative here
 * @param length unsigned 32-bit length, widened
 */
public record Request(int flags, int type, long cookie, long offset, long length) {

  /** Decodes the 28 bytes at the buffer's position; returns null when the magic is wrong. */
  public static Request decode(ByteBuffer buffer) {
    if (buffer.getInt() != Nbd.REQUEST_MAGIC) {
      return null;
    }
    int flags = Short.toUnsignedInt(buffer.getShort());
    int type = Short.toUnsignedInt(buffer.getShort());
    long cookie = buffer.getLong();
    long offset = buffer.getLong();
    long length = Integer.toUnsignedLong(buffer.getInt());
    return new Request(flags, type, cookie, offset, length);
  }

  /** Encodes the request (for tests and clients). */
  public void encode(ByteBuffer buffer) {
    buffer
        .putInt(Nbd.REQUEST_MAGIC)
        .putShort((short) flags)
        .putShort((short) type)
        .putLong(cookie)
        .putLong(offset)
        .putInt((int) length);
  }

  public boolean has(int flag) {
    return (flags & flag) != 0;
  }

  /** True when [offset, offset+length) lies within an export of the given size. */
  public boolean fitsIn(long size) {
    return offset >= 0 && length <= size && offset <= size - length;
  }

  @Override
  public String toString() {
    return Nbd.Cmd.name(type)
        + " offset=" + Long.toUnsignedString(offset)
        + " length=" + length
        + (flags != 0 ? " flags=0x" + Integer.toHexString(flags) : "");
  }
}
