package io.jnbd.cli;

import io.jnbd.util.NativeSockets;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code --log=syslog}: what jnbd would write to stderr, sent line by line to the local syslog
 * daemon instead, as RFC 3164 datagrams on its Unix socket (what glibc's syslog(3) sends):
 * {@code <PRI>Mmm dd hh:mm:ss jnbd[PID]: LINE}, facility daemon, as nbdkit logs.
 *
 * <p>The priority comes from the level at the start of an slf4j-simple line ({@code [thread]
 * LEVEL logger - message}): ERROR is err, WARN warning, INFO info, DEBUG and TRACE debug. The
 * lines of a stack trace that follows keep the priority of the line they belong to. Any other
 * line (the one-line {@code jnbd: ...} start failures) is err, nbdkit's only priority.
 *
 * <p>Sending blocks while the daemon's queue is full, as syslog(3) does. When the daemon goes
 * away (restarted, say), the socket is connected again once per message; a message that still
 * cannot be sent is dropped, there being nowhere left to report it.
 */
final class SyslogOutput extends OutputStream {
  /** Where the syslog daemon listens, unless the environment variable of this name says otherwise. */
  static final String SOCKET_VARIABLE = "JNBD_SYSLOG_SOCKET";
  static final String DEFAULT_SOCKET = "/dev/log";
  static final int FACILITY_DAEMON = 3 << 3;
  static final int LOG_ERR = 3;
  static final int LOG_WARNING = 4;
  static final int LOG_INFO = 6;
  static final int LOG_DEBUG = 7;
  /** Longer lines are cut: rsyslog and journald take 8 KiB by default, and a datagram is all or nothing. */
  private static final int MAX_LINE = 8000;
  private static final Pattern SLF4J_LINE = Pattern.compile("^(?:\\[[^\\]]*\\] )?(TRACE|DEBUG|INFO|WARN|ERROR) ");
  private static final Pattern STACK_TRACE_LINE = Pattern.compile("^(?:\\s|Caused by: |Suppressed: )");
  private static final DateTimeFormatter TIMESTAMP = DateTimeFormatter.ofPattern("MMM ppd HH:mm:ss", Locale.ROOT);

  private final String path;
  private final String tag = "jnbd[" + ProcessHandle.current().pid() + "]: ";
  private final ByteArrayOutputStream line = new ByteArrayOutputStream();
  private final ByteBuffer datagram = ByteBuffer.allocateDirect(MAX_LINE + 128);
  private int fd;
  private int lastPriority = LOG_ERR;
  private boolean closed;

  private SyslogOutput(String path, int fd) {
    this.path = path;
    this.fd = fd;
  }

  /** The socket path: $JNBD_SYSLOG_SOCKET, else /dev/log. */
  static String socketPath() {
    String path = System.getenv(SOCKET_VARIABLE);
    return path == null || path.isEmpty() ? DEFAULT_SOCKET : path;
  }

  /** Connects to the syslog daemon's socket; fails when nothing listens there. */
  static SyslogOutput open(String path) throws IOException {
    return new SyslogOutput(path, connect(path));
  }

  /** A print stream that sends each line it is given to syslog. */
  PrintStream printStream() {
    return new PrintStream(this, true, StandardCharsets.UTF_8);
  }

  private static int connect(String path) throws IOException {
    int fd = NativeSockets.socket(NativeSockets.AF_UNIX, NativeSockets.SOCK_DGRAM);
    try {
      NativeSockets.connectUnix(fd, path);
      return fd;
    } catch (IOException e) {
      NativeSockets.close(fd);
      throw new IOException(path + ": " + e.getMessage().replaceFirst("^connect: ", ""), e);
    }
  }

  @Override
  public synchronized void write(int b) {
    if (b == '\n') {
      sendLine();
    } else {
      line.write(b);
    }
  }

  @Override
  public synchronized void write(byte[] bytes, int offset, int length) {
    int start = offset;
    for (int i = offset; i < offset + length; i++) {
      if (bytes[i] == '\n') {
        line.write(bytes, start, i - start);
        sendLine();
        start = i + 1;
      }
    }
    line.write(bytes, start, offset + length - start);
  }

  @Override
  public synchronized void close() {
    if (line.size() > 0) {
      sendLine();
    }
    if (fd >= 0) {
      NativeSockets.close(fd);
    }
    fd = -1;
    closed = true;
  }

  private void sendLine() {
    String text = line.toString(StandardCharsets.UTF_8).stripTrailing();
    line.reset();
    if (text.isEmpty()) {
      return;
    }
    int priority = priority(text, lastPriority);
    lastPriority = priority;
    String message = "<" + (FACILITY_DAEMON | priority) + ">" + TIMESTAMP.format(LocalDateTime.now()) + " " + tag;
    byte[] header = message.getBytes(StandardCharsets.UTF_8);
    byte[] body = text.getBytes(StandardCharsets.UTF_8);
    datagram.clear().put(header).put(body, 0, Math.min(body.length, MAX_LINE)).flip();
    for (int attempt = 0; attempt < 2; attempt++) {
      if (fd < 0 && (closed || !reconnect())) {
        return;
      }
      try {
        NativeSockets.send(fd, datagram.rewind(), 0);
        return;
      } catch (IOException e) {
        NativeSockets.close(fd);
        fd = -1;
      }
    }
  }

  private boolean reconnect() {
    try {
      fd = connect(path);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** The priority of a line, given that of the line before it (for a stack trace's lines). */
  static int priority(String text, int previous) {
    Matcher level = SLF4J_LINE.matcher(text);
    if (level.find()) {
      return switch (level.group(1)) {
        case "ERROR" -> LOG_ERR;
        case "WARN" -> LOG_WARNING;
        case "INFO" -> LOG_INFO;
        default -> LOG_DEBUG;
      };
    }
    return STACK_TRACE_LINE.matcher(text).find() ? previous : LOG_ERR;
  }
}
