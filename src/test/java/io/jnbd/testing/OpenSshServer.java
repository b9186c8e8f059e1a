package io.jnbd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Debian's OpenSSH server (sshd with its sftp-server) on a loopback port, for the current user,
 * with a host key, a client key and a known_hosts file made for the occasion. Only public-key
 * logins are accepted (a password login would need the user's real password).
 */
public final class OpenSshServer implements AutoCloseable {
  private static final Path SSHD = Path.of("/usr/sbin/sshd");
  private static final Path SFTP_SERVER = Path.of("/usr/lib/openssh/sftp-server");
  private static final long START_TIMEOUT_MS = 20_000;

  private final Path directory;
  private final String keyType;
  private final Path clientKey;
  private final Path knownHosts;
  private final int port;
  private Process process;

  /** Starts sshd with host and client keys of {@code keyType} (ed25519, ecdsa or rsa). */
  public OpenSshServer(String keyType) {
    Tools.require("sshd", "ssh-keygen");
    this.keyType = keyType;
    try {
      directory = Files.createTempDirectory("jnbd-sshd");
      Path hostKey = keygen("host_key");
      clientKey = keygen("id_client");
      Files.copy(clientKey.resolveSibling("id_client.pub"), directory.resolve("authorized_keys"));
      port = freePort();
      knownHosts = directory.resolve("known_hosts");
      Files.writeString(knownHosts, "[127.0.0.1]:" + port + " " + Files.readString(hostKey.resolveSibling("host_key.pub")));
      Path config = directory.resolve("sshd_config");
      Files.writeString(config, String.join("\n",
          "ListenAddress 127.0.0.1",
          "HostKey " + hostKey,
          "PidFile " + directory.resolve("sshd.pid"),
          "AuthorizedKeysFile " + directory.resolve("authorized_keys"),
          "StrictModes no",
          "UsePAM no",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "PubkeyAuthentication yes",
          "PermitRootLogin prohibit-password",
          "Subsystem sftp " + SFTP_SERVER,
          ""));
      if (isRoot()) {
        // sshd started by root insists on its privilege separation directory.
        Files.createDirectories(Path.of("/run/sshd"));
      }
      start(config);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private Path keygen(String name) {
    Path key = directory.resolve(name);
    Tools.run(List.of("ssh-keygen", "-q", "-t", keyType, "-N", "", "-C", "jnbd-test", "-f", key.toString()),
        java.util.Map.of(), 60).assertSuccess();
    return key;
  }

  private static boolean isRoot() {
    return "root".equals(System.getProperty("user.name"));
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return socket.getLocalPort();
    }
  }

  private void start(Path config) throws IOException {
    Path log = directory.resolve("sshd.log");
    process = new ProcessBuilder(SSHD.toString(), "-D", "-e", "-f", config.toString(), "-p", Integer.toString(port))
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
    while (System.currentTimeMillis() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("sshd exited: " + Files.readString(log));
      }
      try (Socket probe = new Socket()) {
        probe.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1000);
        return;
      } catch (IOException notYet) {
        sleep(50);
      }
    }
    close();
    throw new IllegalStateException("sshd did not listen on port " + port + " within " + START_TIMEOUT_MS + " ms");
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  public int port() {
    return port;
  }

  public Path clientKey() {
    return clientKey;
  }

  public Path knownHosts() {
    return knownHosts;
  }

  /** A scratch directory the test may put remote files in (the server sees the same file system). */
  public Path directory() {
    return directory;
  }

  public String user() {
    return System.getProperty("user.name");
  }

  /** The ssh plugin's key=value arguments that reach this server, for a file at {@code path}. */
  public List<String> pluginArgs(Path path) {
    return List.of("host=127.0.0.1", "port=" + port, "user=" + user(), "identity=" + clientKey,
        "known-hosts=" + knownHosts, "path=" + path);
  }

  /** Kills sshd and every session process it started (sftp-server children die with their session). */
  @Override
  public void close() {
    if (process != null) {
      process.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
      process.destroyForcibly();
      try {
        process.waitFor(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    try (var files = Files.walk(directory)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      // a leftover temporary directory is harmless
    }
  }
}
