package io.jnbd.server;

import java.util.Arrays;
import java.util.BitSet;

/**
 * What the fuzzer knows of a writable export's contents: a copy of its bytes, less those it
 * cannot know, such as the target of a write that was sent but never answered, or of two
 * overlapping writes in flight at once.
 */
final class ExportModel {
  private final byte[] bytes;
  private final BitSet unknown = new BitSet();

  /** A model of a new, all-zero export. */
  ExportModel(int size) {
    bytes = new byte[size];
  }

  int size() {
    return bytes.length;
  }

  void write(long offset, byte[] data) {
    System.arraycopy(data, 0, bytes, (int) offset, data.length);
    unknown.clear((int) offset, (int) offset + data.length);
  }

  void zero(long offset, long length) {
    Arrays.fill(bytes, (int) offset, (int) (offset + length), (byte) 0);
    unknown.clear((int) offset, (int) (offset + length));
  }

  void forget(long offset, long length) {
    unknown.set((int) offset, (int) (offset + length));
  }

  /**
   * The first offset at which {@code data}, read at {@code offset}, differs from a byte the
   * model knows and {@code unsettled} does not mark; -1 when there is none.
   */
  long mismatch(long offset, byte[] data, BitSet unsettled) {
    for (int i = 0; i < data.length; i++) {
      int at = (int) offset + i;
      if (data[i] != bytes[at] && !unknown.get(at) && !unsettled.get(at)) {
        return at;
      }
    }
    return -1;
  }

  /** The first offset in the range that holds a byte known to be non-zero; -1 when there is none. */
  long knownNonZero(long offset, long length, BitSet unsettled) {
    for (int at = (int) offset; at < offset + length; at++) {
      if (bytes[at] != 0 && !unknown.get(at) && !unsettled.get(at)) {
        return at;
      }
    }
    return -1;
  }

  /** The byte the model holds at an offset, known or not (for messages). */
  byte byteAt(long offset) {
    return bytes[(int) offset];
  }
}
