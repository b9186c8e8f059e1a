package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.SyslogReceiver;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** --log=syslog, with the test standing in for the syslog daemon on a socket of its own. */
@Tag("slow")
class SyslogIT {
  /** daemon (3) * 8 + the priority. */
  private static final String DAEMON_ERR = "<27>";
  private static final String DAEMON_WARNING = "<28>";
  private static final String DAEMON_INFO = "<30>";
  private static final String DAEMON_DEBUG = "<31>";

  @TempDir Path dir;

  /** jnbd as its own JVM, allowed native access as the launcher allows it (else the JVM warns on stderr). */
  private static List<String> jnbd(String... args) throws Exception {
    List<String> command = new ArrayList<>(ProcessIT.jnbd(args));
    command.add(1, "--enable-native-access=ALL-UNNAMED");
    return command;
  }

  @Test
  void messagesGoToSyslogWithTheirPriorityAndNothingToStderr() throws Exception {
    Tools.require("nbdinfo");
    try (SyslogReceiver syslog = new SyslogReceiver(dir.resolve("log"))) {
      // -D gives a warning, -v debug lines, the ip filter's refusal an info line.
      Tools.Result run = Tools.run(jnbd("--log=syslog", "-v", "-D", "no.such=1", "--filter=ip",
              "--run", "nbdinfo \"$uri\" 2>/dev/null; true", "memory", "1M", "deny=all"),
          Map.of(SyslogOutput.SOCKET_VARIABLE, syslog.path().toString()), 120);
      assertThat(run.exitCode()).as(run.stderr()).isZero();
      assertThat(run.stderr()).isEmpty();
      Tools.Result failure = Tools.run(jnbd("--log=syslog", "-f", "memory", "size=banana"),
          Map.of(SyslogOutput.SOCKET_VARIABLE, syslog.path().toString()), 120);
      assertThat(failure.exitCode()).isEqualTo(1);
      assertThat(failure.stderr()).isEmpty();

      List<String> messages = syslog.messages();
      assertThat(messages).allSatisfy(message ->
          assertThat(message).matches("<(2[4-9]|3[01])>[A-Z][a-z]{2} [ 1-3][0-9] \\d\\d:\\d\\d:\\d\\d jnbd\\[\\d+\\]: .+"));
      assertThat(messages).anySatisfy(message ->
          assertThat(message).startsWith(DAEMON_WARNING).contains("debug flag -D no.such was not used"));
      assertThat(messages).anySatisfy(message ->
          assertThat(message).startsWith(DAEMON_INFO).contains("refused"));
      assertThat(messages).anySatisfy(message -> assertThat(message).startsWith(DAEMON_DEBUG));
      assertThat(messages).anySatisfy(message ->
          assertThat(message).startsWith(DAEMON_ERR).contains("jnbd: ").contains("banana"));
    }
  }

  @Test
  void aBackgroundServerLogsToSyslogOnceStartedWithoutBeingAsked() throws Exception {
    Tools.require("nbdinfo");
    Path socket = dir.resolve("nbd.sock");
    Path pidfile = dir.resolve("jnbd.pid");
    try (SyslogReceiver syslog = new SyslogReceiver(dir.resolve("log"))) {
      Tools.Result start = Tools.run(jnbd("-U", socket.toString(), "-P", pidfile.toString(), "--filter=ip",
              "memory", "1M", "deny=all"),
          Map.of(SyslogOutput.SOCKET_VARIABLE, syslog.path().toString()), 120);
      assertThat(start.exitCode()).as(start.stderr()).isZero();
      ProcessHandle server = ProcessHandle.of(Long.parseLong(Files.readString(pidfile).trim())).orElseThrow();
      try {
        assertThat(Tools.run("nbdinfo", "nbd+unix:///?socket=" + socket).exitCode()).isNotZero();
        // The refusal is logged after nbdinfo has seen the connection close: wait for it, within reason.
        for (int i = 0; i < 600 && syslog.messages().stream().noneMatch(m -> m.contains("refused")); i++) {
          Thread.sleep(50);
        }
        assertThat(syslog.messages()).anySatisfy(message ->
            assertThat(message).startsWith(DAEMON_INFO).contains("jnbd[" + server.pid() + "]").contains("refused"));
      } finally {
        server.destroy();
        server.onExit().get(60, TimeUnit.SECONDS);
      }
    }
  }

  @Test
  void withoutASyslogDaemonMessagesStayOnStderrAfterOneWarning() throws Exception {
    Tools.require("nbdinfo");
    Path missing = dir.resolve("no-such-socket");
    Tools.Result run = Tools.run(jnbd("--log=syslog", "-D", "no.such=1", "--run", "nbdinfo --size \"$uri\"", "memory", "1M"),
        Map.of(SyslogOutput.SOCKET_VARIABLE, missing.toString()), 120);
    assertThat(run.exitCode()).as(run.stderr()).isZero();
    assertThat(run.stdout().trim()).isEqualTo("1048576");
    assertThat(run.stderr().lines().filter(line -> line.contains("cannot reach syslog")).toList())
        .singleElement().asString().contains(missing.toString()).contains("logging to stderr");
    assertThat(run.stderr()).contains("debug flag -D no.such was not used");
  }
}
