package io.jnbd.interop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** nbdkit, the reference server, run in the foreground on a private Unix socket for one test. */
final class Nbdkit implements AutoCloseable {
  private final Process process;
  private final Path directory;
  private final Path socket;

  /** Starts {@code nbdkit [options] plugin args...} and waits until it accepts connections. */
  Nbdkit(List<String> optionsPluginAndArgs) throws IOException, InterruptedException {
    directory = Files.createTempDirectory("jnbd-nbdkit");
    socket = directory.resolve("nbdkit.sock");
    Path pidFile = directory.resolve("nbdkit.pid");
    List<String> command = new ArrayList<>(List.of("nbdkit", "-U", socket.toString(), "-f", "--pidfile", pidFile.toString()));
    command.addAll(optionsPluginAndArgs);
    process = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(directory.resolve("nbdkit.log").toFile()).start();
    // nbdkit writes the pid file once the socket is listening.
    for (int i = 0; i < 1000 && !Files.exists(pidFile); i++) {
      if (!process.isAlive()) {
        throw new IOException("nbdkit exited: " + Files.readString(directory.resolve("nbdkit.log")));
      }
      Thread.sleep(10);
    }
    if (!Files.exists(pidFile)) {
      close();
      throw new IOException("nbdkit did not start: " + command);
    }
  }

  Path socket() {
    return socket;
  }

  String uri() {
    return "nbd+unix:///?socket=" + socket;
  }

  /** Waits up to {@code seconds} for nbdkit to exit on its own; true if it did. */
  boolean exitsWithin(long seconds) throws InterruptedException {
    return process.waitFor(seconds, TimeUnit.SECONDS);
  }

  @Override
  public void close() throws IOException {
    process.destroy();
    try {
      process.waitFor();
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try (var files = Files.list(directory)) {
      for (Path file : files.toList()) {
        Files.deleteIfExists(file);
      }
    }
    Files.deleteIfExists(directory);
  }
}
