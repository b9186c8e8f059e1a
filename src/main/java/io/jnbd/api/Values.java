package io.jnbd.api;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Duration;
import java.util.Locale;

/** Parsers for configuration values, with the syntax nbdkit accepts, and one-line errors. */
public final class Values {
  private Values() {}

  /**
   * Parses a size: a non-negative integer with an optional binary suffix, as nbdkit does: {@code
   * 512}, {@code 4k}, {@code 1M}, {@code 2G}, {@code 1T}, {@code 1P}, {@code 1E}, case
   * insensitive, and the forms {@code 1KiB}/{@code 1KB}. A trailing {@code b} or {@code s}
   * (bytes, 512-byte sectors) is accepted as in nbdkit.
   *
   * @param what the key, for the error message
   */
  public static long parseSize(String what, String text) {
    String s = text.trim();
    if (s.isEmpty()) {
      throw new ConfigException(what + ": empty size");
    }
    int digits = 0;
    while (digits < s.length() && Character.isDigit(s.charAt(digits))) {
      digits++;
    }
    if (digits == 0) {
      throw new ConfigException(what + ": not a size: '" + text + "'");
    }
    String suffix = s.substring(digits).trim().toLowerCase(Locale.ROOT);
    long multiplier =
        switch (suffix) {
          case "", "b" -> 1L;
          case "s" -> 512L;
          case "k", "kb", "kib" -> 1L << 10;
          case "m", "mb", "mib" -> 1L << 20;
          case "g", "gb", "gib" -> 1L << 30;
          case "t", "tb", "tib" -> 1L << 40;
          case "p", "pb", "pib" -> 1L << 50;
          case "e", "eb", "eib" -> 1L << 60;
          default -> throw new ConfigException(what + ": unknown size suffix in '" + text + "'");
        };
    try {
      long number = Long.parseLong(s.substring(0, digits));
      return Math.multiplyExact(number, multiplier);
    } catch (NumberFormatException | ArithmeticException e) {
      throw new ConfigException(what + ": size too large: '" + text + "'");
    }
  }

  /** Parses a boolean as nbdkit does: 1/true/yes/on and 0/false/no/off, case insensitive. */
  public static boolean parseBool(String what, String text) {
    return switch (text.trim().toLowerCase(Locale.ROOT)) {
      case "1", "true", "yes", "on" -> true;
      case "0", "false", "no", "off" -> false;
      default -> throw new ConfigException(what + ": not a boolean: '" + text + "'");
    };
  }

  /** Parses a non-negative int within [min, max]. */
  public static int parseInt(String what, String text, int min, int max) {
    try {
      int value = Integer.parseInt(text.trim());
      if (value < min || value > max) {
        throw new ConfigException(what + ": must be between " + min + " and " + max + ": " + text);
      }
      return value;
    } catch (NumberFormatException e) {
      throw new ConfigException(what + ": not a number: '" + text + "'");
    }
  }

  /**
   * Parses a delay as nbdkit (1.40 and later) does: a non-negative decimal number with an
   * optional unit, seconds by default: {@code 2}, {@code 1.5}, {@code 1.5s}, {@code 100ms},
   * {@code 20us} (or {@code μs}), {@code 500ns}. nbdkit 1.32 takes only whole seconds or whole
   * milliseconds ({@code NNms}), which this accepts too.
   */
  public static Duration parseDelay(String what, String text) {
    String s = text.trim();
    int number = 0;
    while (number < s.length() && (Character.isDigit(s.charAt(number)) || s.charAt(number) == '.')) {
      number++;
    }
    long nanosPerUnit =
        switch (s.substring(number)) {
          case "", "s" -> 1_000_000_000L;
          case "ms" -> 1_000_000L;
          case "us", "\u03bcs", "\u00b5s" -> 1_000L;
          case "ns" -> 1L;
          default -> throw new ConfigException(what + ": not a delay (SECS, or NN with s, ms, us or ns): '" + text + "'");
        };
    try {
      BigDecimal nanos = new BigDecimal(s.substring(0, number)).multiply(BigDecimal.valueOf(nanosPerUnit));
      return Duration.ofNanos(nanos.setScale(0, RoundingMode.DOWN).longValueExact());
    } catch (NumberFormatException | ArithmeticException e) {
      throw new ConfigException(what + ": not a delay (SECS, or NN with s, ms, us or ns): '" + text + "'");
    }
  }

  /**
   * Parses one of an enum's constants, written in lower case on the command line ({@code
   * zeromode=emulate} for {@code EMULATE}), case insensitive.
   *
   * @param what the key, for the error message, which lists the choices
   */
  public static <E extends Enum<E>> E parseChoice(String what, String text, Class<E> choices) {
    String wanted = text.trim();
    for (E choice : choices.getEnumConstants()) {
      if (choice.name().equalsIgnoreCase(wanted)) {
        return choice;
      }
    }
    StringBuilder names = new StringBuilder();
    for (E choice : choices.getEnumConstants()) {
      names.append(names.isEmpty() ? "" : "|").append(choice.name().toLowerCase(Locale.ROOT));
    }
    throw new ConfigException(what + ": must be " + names + ": '" + text + "'");
  }
}
