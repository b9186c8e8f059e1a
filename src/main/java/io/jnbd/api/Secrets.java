package io.jnbd.api;

import java.io.ByteArrayOutputStream;
import java.io.Console;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Passwords and other secrets given on the command line, as nbdkit takes them: {@code -} reads a
 * line from the terminal (without echo) or from stdin, {@code +FILE} reads FILE without its
 * trailing newline, {@code -FD} reads what the parent process wrote to the inherited file
 * descriptor FD (3 or more), up to its end, likewise without the trailing newline; anything
 * else is literal. A secret never appears in an error message.
 */
public final class Secrets {
  /** The value that asks for a secret to be read from the terminal or stdin. */
  public static final String FROM_STDIN = "-";

  /** {@code -FD}: a descriptor number; 0 to 2 are stdin, stdout and stderr, which mean something else. */
  private static final Pattern FROM_DESCRIPTOR = Pattern.compile("-(\\d{1,9})");

  private Secrets() {}

  /** The secret that {@code value} stands for; {@code what} names it in prompts and errors. */
  public static String read(String what, String value) {
    try {
      if (value.equals(FROM_STDIN)) {
        return readLine(what);
      }
      if (value.startsWith("+")) {
        return withoutTrailingNewline(Files.readString(Path.of(value.substring(1)), StandardCharsets.UTF_8));
      }
      Matcher descriptor = FROM_DESCRIPTOR.matcher(value);
      if (descriptor.matches()) {
        return withoutTrailingNewline(readDescriptor(what, Integer.parseInt(descriptor.group(1))));
      }
      return value;
    } catch (IOException e) {
      throw new ConfigException(what + ": cannot read the secret: " + e.getMessage());
    }
  }

  /** Whether the value asks for a secret from an inherited file descriptor ({@code -FD}). */
  public static boolean fromDescriptor(String value) {
    return FROM_DESCRIPTOR.matcher(value).matches();
  }

  /**
   * Everything written to an inherited descriptor, read through /proc/self/fd: Java has no way to
   * adopt a raw descriptor, and a pipe or file opened there is the one the parent passed.
   */
  private static String readDescriptor(String what, int fd) throws IOException {
    if (fd <= 2) {
      throw new ConfigException(what + ": -" + fd + ": file descriptors 0, 1 and 2 cannot carry a secret"
          + " (use '-' for stdin)");
    }
    Path path = Path.of("/proc/self/fd/" + fd);
    if (!Files.exists(path)) {
      throw new ConfigException(what + ": -" + fd + ": file descriptor " + fd + " is not open");
    }
    return Files.readString(path, StandardCharsets.UTF_8);
  }

  private static String withoutTrailingNewline(String text) {
    return text.endsWith("\r\n") ? text.substring(0, text.length() - 2)
        : text.endsWith("\n") ? text.substring(0, text.length() - 1) : text;
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
