package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The socket file of {@code -U PATH}: what the server may remove, at start and at close. */
class UnixSocketPathTest {
  @TempDir Path dir;

  private static NbdServer newServer() {
    return new NbdServer(Stacks.configured(List.of(), new ArrayDisk(4096)), ServerConfig.defaults());
  }

  /** What a server killed with SIGKILL leaves behind: a socket file that nobody accepts on. */
  private static void leaveStaleSocket(Path path) throws IOException {
    try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
      listener.bind(UnixDomainSocketAddress.of(path));
    }
  }

  @Test
  void staleSocketIsReplacedAndServed() throws Exception {
    Path path = dir.resolve("nbd.sock");
    leaveStaleSocket(path);
    try (NbdServer server = newServer()) {
      server.listenUnix(path);
      new RawClient(path).greet(3).close();
    }
    assertThat(path).doesNotExist();
  }

  @Test
  void socketReplacedWhileServingIsLeftToItsNewOwner() throws Exception {
    Path path = dir.resolve("nbd.sock");
    try (NbdServer server = newServer()) {
      server.listenUnix(path);
      Files.delete(path);
      Files.writeString(path, "theirs");
    }
    assertThat(path).hasContent("theirs");
  }
}
