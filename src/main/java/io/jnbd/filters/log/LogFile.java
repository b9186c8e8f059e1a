package io.jnbd.filters.log;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The log file: one line per event, each stamped with the local time to the microsecond as
 * nbdkit stamps it, written whole and flushed at once, so that concurrent requests never mix
 * their lines and the file is current when a client or test reads it.
 */
final class LogFile implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(LogFile.class);
  private static final DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSSSSS");

  private final BufferedWriter out;
  private final Clock clock;
  private boolean failed;

  LogFile(Path path, boolean append, Clock clock) throws IOException {
    this.out = Files.newBufferedWriter(path, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING);
    this.clock = clock;
  }

  /** Writes one event; a failing disk loses log lines, never requests. */
  synchronized void write(String event) {
    try {
      out.write(STAMP.format(LocalDateTime.now(clock)));
      out.write(' ');
      out.write(event);
      out.newLine();
      out.flush();
    } catch (IOException e) {
      if (!failed) {
        failed = true;
        log.warn("log: cannot write the log file: {}", e.getMessage());
      }
    }
  }

  @Override
  public synchronized void close() throws IOException {
    out.close();
  }

  /**
   * A string as nbdkit's log shows it: as is when it has only characters a shell leaves alone,
   * else in double quotes with {@code "}, {@code $}, {@code `} and {@code \} escaped.
   */
  static String quote(String text) {
    if (!text.isEmpty() && text.chars().allMatch(LogFile::isPlain)) {
      return text;
    }
    StringBuilder quoted = new StringBuilder(text.length() + 2).append('"');
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '"' || c == '$' || c == '`' || c == '\\') {
        quoted.append('\\');
      }
      quoted.append(c);
    }
    return quoted.append('"').toString();
  }

  private static boolean isPlain(int c) {
    return c < 128 && (Character.isLetterOrDigit(c) || ",=:/.-_".indexOf(c) >= 0);
  }
}
