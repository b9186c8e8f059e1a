package io.jnbd.plugins.nbd;

import io.jnbd.api.ConfigException;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * An upstream NBD server that the plugin runs itself ({@code command=}, {@code arg=}), handed a
 * listening Unix socket by systemd socket activation (LISTEN_FDS), as nbdkit does through
 * libnbd. The JDK cannot pass a descriptor to a child, so {@code systemd-socket-activate} (from
 * systemd) creates the socket in a private directory and starts the command on the first
 * connection. The command is stopped, and the directory removed, at {@link #close}.
 */
final class UpstreamCommand implements AutoCloseable {
  static final String ACTIVATOR = "systemd-socket-activate";
  private static final long SOCKET_WAIT_MILLIS = 10_000;
  private static final long STOP_WAIT_MILLIS = 5_000;

  private final Path directory;
  private final Path socket;
  private final Process process;

  private UpstreamCommand(Path directory, Path socket, Process process) {
    this.directory = directory;
    this.socket = socket;
    this.process = process;
  }

  /** Starts the command behind a fresh socket and returns once the socket accepts connections. */
  static UpstreamCommand start(String command, List<String> args) {
    Path activator = findActivator();
    Path directory;
    try {
      directory = Files.createTempDirectory("jnbd-nbd-");
    } catch (IOException e) {
      throw new ConfigException("nbd: command: cannot create a directory for the socket: " + e.getMessage(), e);
    }
    Path socket = directory.resolve("upstream.sock");
    List<String> line = new ArrayList<>(List.of(activator.toString(), "--listen=" + socket, command));
    line.addAll(args);
    Process process;
    try {
      // The command's output goes to stderr: stdout may be carrying the NBD protocol (-s).
      process = new ProcessBuilder(line)
          .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
          .redirectOutput(ProcessBuilder.Redirect.appendTo(new File("/dev/stderr")))
          .redirectError(ProcessBuilder.Redirect.INHERIT)
          .start();
    } catch (IOException e) {
      deleteQuietly(directory);
      throw new ConfigException("nbd: command: cannot run " + ACTIVATOR + ": " + e.getMessage(), e);
    }
    UpstreamCommand started = new UpstreamCommand(directory, socket, process);
    try {
      started.awaitSocket(command);
    } catch (RuntimeException e) {
      started.close();
      throw e;
    }
    return started;
  }

  private static Path findActivator() {
    for (String dir : (System.getenv().getOrDefault("PATH", "") + ":/usr/bin:/bin").split(":")) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, ACTIVATOR))) {
        return Path.of(dir, ACTIVATOR);
      }
    }
    throw new ConfigException("nbd: command= needs " + ACTIVATOR + " (Debian package systemd) to hand the command its socket");
  }

  private void awaitSocket(String command) {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(SOCKET_WAIT_MILLIS);
    while (!Files.exists(socket)) {
      if (!process.isAlive()) {
        throw new ConfigException("nbd: command: " + ACTIVATOR + " for '" + command + "' exited with status " + process.exitValue());
      }
      if (System.nanoTime() > deadline) {
        throw new ConfigException("nbd: command: " + ACTIVATOR + " did not create its socket in " + SOCKET_WAIT_MILLIS / 1000 + " s");
      }
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ConfigException("nbd: command: interrupted while starting '" + command + "'");
      }
    }
  }

  Upstream upstream(String exportName) {
    return Upstream.unix(socket, exportName);
  }

  /** Stops the command (SIGTERM, then SIGKILL after 5 s) and removes its socket. */
  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(STOP_WAIT_MILLIS, TimeUnit.MILLISECONDS)) {
        process.destroyForcibly().waitFor();
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    deleteQuietly(socket);
    deleteQuietly(directory);
  }

  private static void deleteQuietly(Path path) {
    try {
      Files.deleteIfExists(path);
    } catch (IOException ignored) {
      // A leftover in the temporary directory is harmless.
    }
  }
}
