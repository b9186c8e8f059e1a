package io.jnbd.api;

/**
 * Bad configuration: an unknown key, a missing required key, a value that does not parse. The
 * command line prints the message as a one-line error and exits non-zero, so the message must
 * name the plugin or filter and the key.
 */
public class ConfigException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ConfigException(String message) {
    super(message);
  }

  public ConfigException(String message, Throwable cause) {
    super(message, cause);
  }
}
