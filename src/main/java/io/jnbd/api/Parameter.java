package io.jnbd.api;

/**
 * One key a plugin or filter accepts, for {@code --help} and {@code --dump-plugin}. Each layer
 * lists every key it parses, so that the help text and the parser cannot drift apart: {@link
 * Configurable#config} is expected to reject any key not listed here.
 *
 * @param key the key as written on the command line ({@code size}, {@code cache-max-size})
 * @param value a short placeholder for the value ({@code SIZE}, {@code true|false})
 * @param help one or two sentences, with the default
 * @param secret whether the value is a secret taken as {@link Secrets#read} takes it: a
 *     background start must then read {@code KEY=-} from the user's stdin before it detaches
 */
public record Parameter(String key, String value, String help, boolean secret) {
  public Parameter(String key, String value, String help) {
    this(key, value, help, false);
  }
}
