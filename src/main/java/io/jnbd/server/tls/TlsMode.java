package io.jnbd.server.tls;

import io.jnbd.api.ConfigException;
import java.util.Locale;

/**
 * {@code --tls}: whether clients may (ON) or must (REQUIRE) upgrade to TLS with NBD_OPT_STARTTLS.
 * The ordinal is nbdkit's {@code $tls} value for {@code --run}.
 */
public enum TlsMode {
  OFF,
  ON,
  REQUIRE;

  /** nbdkit's spellings: require, required or force, else a boolean (on/yes/true/1, off/no/false/0). */
  public static TlsMode parse(String value) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "require", "required", "force" -> REQUIRE;
      case "on", "yes", "y", "true", "t", "1" -> ON;
      case "off", "no", "n", "false", "f", "0" -> OFF;
      default -> throw new ConfigException("--tls: must be off, on or require, not '" + value + "'");
    };
  }
}
