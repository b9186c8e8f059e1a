package io.jnbd.cli;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Secrets;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The default, nbdkit-like start: return to the shell once the server accepts connections and
 * keep serving in the background. A JVM cannot fork, so the parent re-executes the same JVM
 * (same java binary, JVM options and class path) as a foreground server with a hidden option,
 * relays what the child prints until the child writes a readiness line on its stdout, and then
 * exits 0. If the child exits first, the parent exits with the child's status.
 */
final class Background {
  /** The line the child prints on stdout once it listens and the pidfile is written. */
  static final String READY = "jnbd-ready";
  /** How long a plugin may take to start (an HTTP plugin may probe a slow server). */
  private static final long START_TIMEOUT_SECONDS = 120;

  private Background() {}

  /** Parent side: starts the server in a child JVM and waits until it is ready. */
  static int launch(String[] args, Options options, Set<String> secretKeys, PrintStream err) throws IOException, InterruptedException {
    List<String> secrets = secretsForChild(options, secretKeys);
    ProcessBuilder builder = new ProcessBuilder(childCommand(readingSecretsFromStdin(args, options, secretKeys)));
    builder.redirectInput(secrets.isEmpty() ? ProcessBuilder.Redirect.from(new File("/dev/null")) : ProcessBuilder.Redirect.PIPE);
    if (logsToStderr(options)) {
      builder.redirectError(ProcessBuilder.Redirect.INHERIT);
    } else {
      // Startup messages reach the user through us; later ones are dropped (see signalReady).
      builder.redirectErrorStream(true);
    }
    // The JVM already turned these into input arguments, which childCommand() copies.
    builder.environment().remove("JDK_JAVA_OPTIONS");
    builder.environment().remove("JAVA_TOOL_OPTIONS");
    Process child = builder.start();
    if (!secrets.isEmpty()) {
      try (Writer toChild = child.outputWriter(StandardCharsets.UTF_8)) {
        for (String secret : secrets) {
          toChild.write(secret + "\n");
        }
      }
    }
    // Interrupting the start (Ctrl-C) must not leave a server behind in its own session.
    Thread abandon = new Thread(child::destroy, "jnbd-abandon-start");
    Runtime.getRuntime().addShutdownHook(abandon);
    CompletableFuture<Boolean> ready = new CompletableFuture<>();
    Thread.ofVirtual().name("jnbd-child-output").start(() -> relay(child, err, ready));
    try {
      if (ready.get(START_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
        Runtime.getRuntime().removeShutdownHook(abandon);
        return 0;
      }
      int status = child.waitFor();
      return status == 0 ? 1 : status; // exiting before it was ready is a failure
    } catch (TimeoutException e) {
      child.destroyForcibly();
      err.println("jnbd: the server did not start within " + START_TIMEOUT_SECONDS + " s");
      return 1;
    } catch (ExecutionException e) {
      child.destroyForcibly();
      err.println("jnbd: lost contact with the server process: " + e.getCause());
      return 1;
    }
  }

  /**
   * Secrets to be read from stdin ({@code KEY=-}) or from an inherited descriptor ({@code
   * KEY=-FD}), read here, where the user's terminal or stdin is and where the descriptor was
   * inherited (a child JVM inherits only 0, 1 and 2), in command-line order: the child reads
   * them from a pipe in that same order as it configures the plugin. A background server keeps
   * no hold on the user's stdin.
   */
  private static List<String> secretsForChild(Options options, Set<String> secretKeys) throws IOException {
    List<String> secrets = new ArrayList<>();
    for (Options.Param param : options.params()) {
      if (!secretKeys.contains(param.key())) {
        continue;
      }
      if (param.value().equals(Secrets.FROM_STDIN)) {
        secrets.add(Secrets.readLine(param.key()));
      } else if (Secrets.fromDescriptor(param.value())) {
        String secret = Secrets.read(param.key(), param.value());
        if (secret.contains("\n")) {
          throw new ConfigException(param.key() + ": a secret of several lines from a file descriptor"
              + " cannot be handed to a background server; add -f");
        }
        secrets.add(secret);
      }
    }
    return secrets;
  }

  /** The arguments with each {@code KEY=-FD} secret turned into {@code KEY=-}: the child reads it from its stdin. */
  private static String[] readingSecretsFromStdin(String[] args, Options options, Set<String> secretKeys) {
    Set<String> fromDescriptors = new HashSet<>();
    for (Options.Param param : options.params()) {
      if (secretKeys.contains(param.key()) && Secrets.fromDescriptor(param.value())) {
        fromDescriptors.add(param.key() + "=" + param.value());
      }
    }
    return Arrays.stream(args)
        .map(arg -> fromDescriptors.contains(arg) ? arg.substring(0, arg.indexOf('=') + 1) + Secrets.FROM_STDIN : arg)
        .toArray(String[]::new);
  }

  private static void relay(Process child, PrintStream err, CompletableFuture<Boolean> ready) {
    try (BufferedReader lines = new BufferedReader(
        new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line = lines.readLine(); line != null; line = lines.readLine()) {
        if (line.equals(READY)) {
          ready.complete(true);
          return;
        }
        err.println(line);
      }
      ready.complete(false);
    } catch (IOException e) {
      ready.completeExceptionally(e);
    }
  }

  /** The command that runs this program again in the same way, as the background server. */
  private static List<String> childCommand(String[] args) {
    List<String> command = new ArrayList<>();
    // setsid gives the server a session of its own, so that closing the terminal does not
    // hang it up, as nbdkit does after its fork. It execs in place: the child pid is the JVM's.
    for (String setsid : List.of("/usr/bin/setsid", "/bin/setsid")) {
      if (Files.isExecutable(Path.of(setsid))) {
        command.add(setsid);
        break;
      }
    }
    command.add(ProcessHandle.current().info().command()
        .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(Main.class.getName());
    command.add(Options.BACKGROUND_CHILD);
    command.addAll(List.of(args));
    return command;
  }

  private static boolean logsToStderr(Options options) {
    return "stderr".equals(options.log);
  }

  /**
   * Child side: tells the parent that the server is ready, then stops writing to the pipe that
   * the parent is about to abandon. Later messages go where --log says; without it, to syslog
   * when it can be reached (as nbdkit logs once in the background), else nowhere: use -f to
   * see them.
   */
  static void signalReady(Options options) {
    PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream());
    // Switched before the parent hears that we are ready: a client it then lets in must not
    // have its messages written to the pipe that is about to be abandoned.
    if (options.log == null) {
      System.setErr(syslogOr(nowhere));
    } else if (options.log.equals("null")) {
      System.setErr(nowhere);
    }
    System.out.println(READY);
    System.out.flush();
    System.setOut(nowhere);
  }

  private static PrintStream syslogOr(PrintStream fallback) {
    try {
      return SyslogOutput.open(SyslogOutput.socketPath()).printStream();
    } catch (IOException e) {
      return fallback;
    }
  }
}
