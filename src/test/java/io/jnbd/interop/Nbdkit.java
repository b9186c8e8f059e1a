package io.jnbd.interop;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * nbdkit, the reference server, run in the foreground for one test on a private Unix socket, or
 * on a loopback TCP port.
 */
final class Nbdkit implements AutoCloseable {
  private final Process process;
  private final Path directory;
  private final Path socket;
  private final int port;

  /** Starts {@code nbdkit [options] plugin args...} on a Unix socket and waits until it accepts connections. */
  Nbdkit(List<String> optionsPluginAndArgs) throws IOException, InterruptedException {
    this(0, optionsPluginAndArgs);
  }

  /** The same on 127.0.0.1:{@code port} instead, unless the port is 0. */
  Nbdkit(int port, List<String> optionsPluginAndArgs) throws IOException, InterruptedException {
    directory = Files.createTempDirectory("jnbd-nbdkit");
    this.port = port;
    socket = port == 0 ? directory.resolve("nbdkit.sock") : null;
    Path pidFile = directory.resolve("nbdkit.pid");
    List<String> listen = port == 0 ? List.of("-U", socket.toString()) : List.of("-i", "127.0.0.1", "-p", Integer.toString(port));
    List<String> command = new ArrayList<>(List.of("nbdkit", "-f", "--pidfile", pidFile.toString()));
    command.addAll(listen);
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

  /** A loopback TCP port that was free a moment ago, for an nbdkit that needs one. */
  static int freePort() throws IOException {
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return probe.getLocalPort();
    }
  }

  Path socket() {
    return socket;
  }

  String uri() {
    return socket != null ? "nbd+unix:///?socket=" + socket : "nbd://127.0.0.1:" + port;
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
