package io.jnbd.api;

import java.io.ByteArrayOutputStream;
import java.io.Console;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Passwords and other secrets given on the command line, as nbdkit takes them: {@code -} reads a
 * line from the terminal (without echo) or from stdin, {@code +FILE} reads FILE without its
 * trailing newline, {@code -FD} reads the inherited file descriptor FD the same way (Linux:
 * through /dev/fd), anything else is literal. A secret never appears in an error message.
 */
public final class Secrets {
  /** The value that asks for a secret to be read from the terminal or stdin. */
  public static final String FROM_STDIN = "-";

  private Secrets() {}

  /** The secret that {@code value} stands for; {@code what} names it in prompts and errors. */
  public static String read(String what, String value) {
    try {
      if (value.equals(FROM_STDIN)) {
        return readLine(what);
      }
      boolean fromDescriptor = value.length() > 1 && value.startsWith("-") && value.substring(1).chars().allMatch(Character::isDigit);
      if (value.startsWith("+") || fromDescriptor) {
        Path source = fromDescriptor ? Path.of("/dev/fd", value.substring(1)) : Path.of(value.substring(1));
        String text = Files.readString(source, StandardCharsets.UTF_8);
        return text.endsWith("\r\n") ? text.substring(0, text.length() - 2)
            : text.endsWith("\n") ? text.substring(0, text.length() - 1) : text;
      }
      return value;
    } catch (IOException e) {
      throw new ConfigException(what + ": cannot read the secret: " + e.getMessage());
    }
  }

  /**
   * One line typed at the terminal without echo, or else read from stdin. Stdin is read a byte
   * at a time: a buffered reader would swallow the lines meant for the next secret.
   */
  public static String readLine(String what) throws IOException {
    Console console = System.console();
    if (console != null) {
      char[] typed = console.readPassword("%s: ", what);
      return typed == null ? "" : new String(typed);
    }
    InputStream in = System.in;
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    for (int b = in.read(); b >= 0 && b != '\n'; b = in.read()) {
      line.write(b);
    }
    String text = line.toString(StandardCharsets.UTF_8);
    return text.endsWith("\r") ? text.substring(0, text.length() - 1) : text;
  }
}
