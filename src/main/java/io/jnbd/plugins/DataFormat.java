package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Parses the subset of nbdkit's {@code data=} format that jnbd supports and lays the result out
 * in a {@link SparseStore}:
 *
 * <ul>
 *   <li>{@code BYTE}: a number 0..255 in decimal, hex ({@code 0x1f}) or octal ({@code 017});
 *   <li>{@code le16:W be16:W le32:W be32:W le64:W be64:W}: a word in that byte order;
 *   <li>{@code "string"}: its UTF-8 bytes, with C escapes {@code \\ \" \' \? \a \b \f \n \r \t \v
 *       \xHH};
 *   <li>{@code @N}, {@code @+N}, {@code @-N}, {@code @^N}: move to N, forward, back, or up to a
 *       multiple of N;
 *   <li>{@code ( ... )}: a group, whose offsets are relative to its start;
 *   <li>{@code EXPR * N}: the byte, word, string or group repeated N times;
 *   <li>{@code # comment} to the end of the line.
 * </ul>
 *
 * Later bytes overwrite earlier ones; a group overwrites its whole length, zeroes included. The
 * length is the furthest offset reached. Files ({@code <FILE}), scripts, slices ({@code [N:M]}),
 * names ({@code \NAME}, {@code ->}) and variables ({@code $VAR}) are rejected with an error.
 */
final class DataFormat {
  /** Pages for groups are small because a group is usually a few bytes. */
  private static final int GROUP_PAGE_SIZE = 4096;
  /** Repetitions are written in blocks of about this size. */
  private static final int BLOCK = 1 << 20;

  private final String text;
  private int at;

  private DataFormat(String text) {
    this.text = text;
  }

  /** The laid-out bytes and the length they reach. */
  record Image(SparseStore store, long length) {}

  /** Parses {@code text} into a new store with the given page size. */
  static Image parse(String text, int pageSize) {
    DataFormat parser = new DataFormat(text);
    Canvas canvas = new Canvas(new SparseStore(pageSize));
    parser.sequence(canvas, false);
    return new Image(canvas.store, canvas.length);
  }

  /** Where a sequence of expressions is being written: a store, a cursor, a high-water mark. */
  private static final class Canvas {
    final SparseStore store;
    long position;
    long length;

    Canvas(SparseStore store) {
      this.store = store;
    }

    void moveTo(long offset) {
      position = offset;
      length = Math.max(length, offset);
    }
  }

  /** Something that occupies {@link #length()} bytes when written at an offset. */
  private sealed interface Fragment permits Literal, Group, Repeat {
    long length();

    void writeTo(SparseStore target, long offset);

    /** Its bytes; only called for fragments of at most {@link #BLOCK} bytes. */
    byte[] bytes();
  }

  private record Literal(byte[] bytes) implements Fragment {
    @Override
    public long length() {
      return bytes.length;
    }

    @Override
    public void writeTo(SparseStore target, long offset) {
      write(target, ByteBuffer.wrap(bytes), offset);
    }
  }

  private record Group(Canvas canvas) implements Fragment {
    @Override
    public long length() {
      return canvas.length;
    }

    @Override
    public void writeTo(SparseStore target, long offset) {
      // Holes in the group still overwrite what was there, as zeroes.
      Extents map = new Extents(0, canvas.length);
      canvas.store.extents(0, canvas.length, map);
      long from = 0;
      ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(BLOCK, canvas.length));
      for (int i = 0; i < map.count(); i++) {
        long runEnd = from + map.length(i);
        if (map.type(i) == Extents.DATA) {
          for (long done = from; done < runEnd; ) {
            int n = (int) Math.min(chunk.capacity(), runEnd - done);
            canvas.store.read(chunk.clear().limit(n), done);
            write(target, chunk.flip(), offset + done);
            done += n;
          }
        } else {
          target.zero(offset + from, map.length(i));
        }
        from = runEnd;
      }
    }

    @Override
    public byte[] bytes() {
      ByteBuffer all = ByteBuffer.allocate((int) canvas.length);
      canvas.store.read(all, 0);
      return all.array();
    }
  }

  private record Repeat(Fragment unit, long count, long length) implements Fragment {
    @Override
    public void writeTo(SparseStore target, long offset) {
      long unitLength = unit.length();
      if (unitLength == 0 || count == 0) {
        return;
      }
      if (unitLength > BLOCK) {
        for (long i = 0; i < count; i++) {
          unit.writeTo(target, offset + i * unitLength);
        }
        return;
      }
      // Small units are copied into one block of many repetitions, written as often as needed.
      long perBlock = Math.min(count, Math.max(1, BLOCK / unitLength));
      byte[] block = tile(unit.bytes(), (int) perBlock);
      long written = 0;
      while (written < count) {
        long n = Math.min(perBlock, count - written);
        write(target, ByteBuffer.wrap(block, 0, (int) (n * unitLength)), offset + written * unitLength);
        written += n;
      }
    }

    @Override
    public byte[] bytes() {
      return tile(unit.bytes(), (int) count);
    }

    private static byte[] tile(byte[] unit, int times) {
      byte[] block = new byte[unit.length * times];
      for (int i = 0; i < times; i++) {
        System.arraycopy(unit, 0, block, i * unit.length, unit.length);
      }
      return block;
    }
  }

  private static void write(SparseStore target, ByteBuffer bytes, long offset) {
    try {
      target.write(bytes, offset);
    } catch (NbdException e) {
      throw new ConfigException("data: " + e.getMessage(), e);
    }
  }

  private void sequence(Canvas canvas, boolean nested) {
    while (true) {
      skipBlanks();
      if (at >= text.length()) {
        if (nested) {
          throw error("missing ')'");
        }
        return;
      }
      char c = text.charAt(at);
      if (c == ')') {
        if (!nested) {
          throw error("unmatched ')'");
        }
        at++;
        return;
      }
      if (c == '@') {
        at++;
        move(canvas);
        continue;
      }
      Fragment fragment = repetitions(primary());
      fragment.writeTo(canvas.store, canvas.position);
      canvas.moveTo(checkedAdd(canvas.position, fragment.length()));
    }
  }

  private void move(Canvas canvas) {
    char kind = at < text.length() ? text.charAt(at) : ' ';
    if (kind == '+' || kind == '-' || kind == '^') {
      at++;
    }
    long n = number("offset");
    long target =
        switch (kind) {
          case '+' -> checkedAdd(canvas.position, n);
          case '-' -> {
            if (n > canvas.position) {
              throw error("@-" + n + " moves before the start");
            }
            yield canvas.position - n;
          }
          case '^' -> {
            if (n == 0) {
              throw error("alignment @^0");
            }
            yield checkedMultiply(Math.ceilDiv(canvas.position, n), n);
          }
          default -> n;
        };
    canvas.moveTo(target);
    skipBlanks();
    if (at < text.length() && text.charAt(at) == '*') {
      throw error("an offset (@) cannot be repeated");
    }
  }

  private Fragment primary() {
    char c = text.charAt(at);
    if (c == '(') {
      at++;
      Canvas group = new Canvas(new SparseStore(GROUP_PAGE_SIZE));
      sequence(group, true);
      return new Group(group);
    }
    if (c == '"') {
      at++;
      return new Literal(string());
    }
    if (Character.isDigit(c)) {
      long value = number("byte");
      if (value > 255) {
        throw error("byte " + value + " is not in the range 0..255");
      }
      return new Literal(new byte[] {(byte) value});
    }
    if (text.startsWith("le", at) || text.startsWith("be", at)) {
      return word();
    }
    throw switch (c) {
      case '<' -> error("files and scripts (<) are not supported");
      case '$' -> error("variables ($) are not supported");
      case '\\' -> error("names (\\NAME) are not supported");
      default -> error("unexpected '" + c + "'");
    };
  }

  private Fragment repetitions(Fragment fragment) {
    Fragment result = fragment;
    while (true) {
      skipBlanks();
      if (at >= text.length()) {
        return result;
      }
      char c = text.charAt(at);
      if (c == '[') {
        throw error("slices ([N:M]) are not supported");
      }
      if (text.startsWith("->", at)) {
        throw error("names (-> \\NAME) are not supported");
      }
      if (c != '*') {
        return result;
      }
      at++;
      skipBlanks();
      long count = number("repeat count");
      result = new Repeat(result, count, checkedMultiply(result.length(), count));
    }
  }

  private Fragment word() {
    int start = at;
    while (at < text.length() && Character.isLetterOrDigit(text.charAt(at))) {
      at++;
    }
    String type = text.substring(start, at);
    int bits =
        switch (type) {
          case "le16", "be16" -> 16;
          case "le32", "be32" -> 32;
          case "le64", "be64" -> 64;
          default -> {
            at = start;
            throw error("unknown word type '" + type + "'");
          }
        };
    if (at >= text.length() || text.charAt(at) != ':') {
      throw error("expected ':' after " + type);
    }
    at++;
    int wordStart = at;
    long value = unsignedNumber(type + " word");
    if (bits < 64 && value >>> bits != 0) {
      at = wordStart;
      throw error(type + " word does not fit in " + bits + " bits");
    }
    ByteBuffer bytes = ByteBuffer.allocate(8)
        .order(type.startsWith("le") ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN)
        .putLong(0, value);
    byte[] all = bytes.array();
    int size = bits / 8;
    return new Literal(type.startsWith("le") ? Arrays.copyOf(all, size) : Arrays.copyOfRange(all, 8 - size, 8));
  }

  private byte[] string() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    int start = at - 1;
    while (true) {
      if (at >= text.length()) {
        at = start;
        throw error("unterminated string");
      }
      char c = text.charAt(at++);
      if (c == '"') {
        return out.toByteArray();
      }
      if (c != '\\') {
        int end = Character.isHighSurrogate(c) && at < text.length() ? at + 1 : at;
        out.writeBytes(text.substring(at - 1, end).getBytes(StandardCharsets.UTF_8));
        at = end;
        continue;
      }
      if (at >= text.length()) {
        throw error("unterminated string");
      }
      char escape = text.charAt(at++);
      switch (escape) {
        case '\\', '"', '\'', '?' -> out.write(escape);
        case 'a' -> out.write(7);
        case 'b' -> out.write(8);
        case 'f' -> out.write(12);
        case 'n' -> out.write(10);
        case 'r' -> out.write(13);
        case 't' -> out.write(9);
        case 'v' -> out.write(11);
        case 'x' -> {
          int digits = 0;
          int value = 0;
          while (digits < 2 && at < text.length() && Character.digit(text.charAt(at), 16) >= 0) {
            value = value * 16 + Character.digit(text.charAt(at++), 16);
            digits++;
          }
          if (digits == 0) {
            throw error("\\x needs hex digits");
          }
          out.write(value);
        }
        default -> {
          at--;
          throw error("unsupported escape '\\" + escape + "' in string");
        }
      }
    }
  }

  /** A non-negative number in decimal, 0x hex or 0-prefixed octal. */
  private long number(String what) {
    long value = unsignedNumber(what);
    if (value < 0) {
      throw error(what + " is too large");
    }
    return value;
  }

  /** As {@link #number} but up to 2^64-1, returned as the same 64 bits. */
  private long unsignedNumber(String what) {
    int start = at;
    while (at < text.length() && Character.isLetterOrDigit(text.charAt(at))) {
      at++;
    }
    String token = text.substring(start, at);
    try {
      if (token.isEmpty()) {
        throw new NumberFormatException();
      }
      if (token.startsWith("0x") || token.startsWith("0X")) {
        return Long.parseUnsignedLong(token.substring(2), 16);
      }
      if (token.length() > 1 && token.charAt(0) == '0') {
        return Long.parseUnsignedLong(token.substring(1), 8);
      }
      return Long.parseUnsignedLong(token);
    } catch (NumberFormatException e) {
      at = start;
      throw error("expected a number for the " + what + ", found '" + token + "'");
    }
  }

  private void skipBlanks() {
    while (at < text.length()) {
      char c = text.charAt(at);
      if (c == '#') {
        while (at < text.length() && text.charAt(at) != '\n') {
          at++;
        }
      } else if (Character.isWhitespace(c)) {
        at++;
      } else {
        return;
      }
    }
  }

  private long checkedAdd(long a, long b) {
    try {
      return Math.addExact(a, b);
    } catch (ArithmeticException e) {
      throw error("offset overflows 2^63-1");
    }
  }

  private long checkedMultiply(long a, long b) {
    try {
      return Math.multiplyExact(a, b);
    } catch (ArithmeticException e) {
      throw error("size overflows 2^63-1");
    }
  }

  private ConfigException error(String message) {
    return new ConfigException("data: " + message + " at character " + at + " of the data parameter");
  }
}
