package io.jnbd.filters.protect;

import io.jnbd.api.ConfigException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The union of the protect= ranges, as sorted, disjoint, half-open [from, to) byte ranges; a
 * range with no end runs to {@link Long#MAX_VALUE}, past any export.
 *
 * @param ranges the ranges as given, which may overlap, in any order; merged when built
 */
record ProtectedRanges(List<Range> ranges) {
  /** One protected range [from, to). */
  record Range(long from, long to) {}

  ProtectedRanges {
    ranges = merge(ranges);
  }

  /**
   * Parses {@code START-END} (inclusive; either may be left out for the start or end of the
   * disk) or {@code ~START-END}, everything but that range. Numbers are decimal, octal (0NN) or
   * hexadecimal (0xNN), as nbdkit takes them.
   */
  static List<Range> parse(String key, String text) {
    boolean complement = text.startsWith("~");
    String range = complement ? text.substring(1) : text;
    int dash = range.indexOf('-');
    if (dash < 0) {
      throw new ConfigException("protect: " + key + ": expected START-END or ~START-END: '" + text + "'");
    }
    long start = dash == 0 ? 0 : number(key, range.substring(0, dash));
    long end = dash == range.length() - 1 ? Long.MAX_VALUE - 1 : number(key, range.substring(dash + 1));
    if (end < start) {
      throw new ConfigException("protect: " + key + ": the end comes before the start: '" + text + "'");
    }
    return complement ? List.of(new Range(0, start), new Range(end + 1, Long.MAX_VALUE)) : List.of(new Range(start, end + 1));
  }

  private static long number(String key, String text) {
    String digits = text;
    int radix = 10;
    if (text.startsWith("0x") || text.startsWith("0X")) {
      digits = text.substring(2);
      radix = 16;
    } else if (text.length() > 1 && text.startsWith("0")) {
      digits = text.substring(1);
      radix = 8;
    }
    try {
      if (digits.isEmpty() || !Character.isLetterOrDigit(digits.charAt(0))) {
        throw new NumberFormatException();
      }
      long value = Long.parseLong(digits, radix);
      if (value == Long.MAX_VALUE) {
        throw new NumberFormatException();
      }
      return value;
    } catch (NumberFormatException e) {
      throw new ConfigException("protect: " + key + ": not an offset: '" + text + "'");
    }
  }

  private static List<Range> merge(List<Range> ranges) {
    List<Range> sorted = ranges.stream().filter(r -> r.to() > r.from())
        .sorted(Comparator.comparingLong(Range::from)).toList();
    List<Range> out = new ArrayList<>();
    for (Range range : sorted) {
      Range last = out.isEmpty() ? null : out.getLast();
      if (last != null && range.from() <= last.to()) {
        out.set(out.size() - 1, new Range(last.from(), Math.max(last.to(), range.to())));
      } else {
        out.add(range);
      }
    }
    return List.copyOf(out);
  }

  /** The protected parts of [offset, offset+length), in order. */
  List<Range> within(long offset, long length) {
    long end = offset + length;
    List<Range> parts = new ArrayList<>();
    for (Range range : ranges) {
      if (range.from() >= end) {
        break;
      }
      if (range.to() > offset) {
        parts.add(new Range(Math.max(offset, range.from()), Math.min(end, range.to())));
      }
    }
    return parts;
  }
}
