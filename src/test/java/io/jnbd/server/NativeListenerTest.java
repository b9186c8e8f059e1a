package io.jnbd.server;

import static io.jnbd.testing.ProcessFigures.liveThreadsNamed;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.Tools;
import io.jnbd.util.NativeSockets;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The listener and channel that --vsock serves through (native descriptors, not the JDK's
 * channels), driven over a Unix socket, which real clients can reach here where no AF_VSOCK
 * client can.
 */
class NativeListenerTest {
  @TempDir Path dir;

  @Test
  void realClientsReadAndWriteThroughNativeSockets() throws Exception {
    Tools.require("nbdcopy");
    ArrayDisk disk = new ArrayDisk(8 << 20);
    new Random(7).nextBytes(disk.data);
    byte[] original = disk.data.clone();
    Path socket = dir.resolve("native.sock");
    try (NbdServer server = new NbdServer(Stacks.configured(List.of(), disk), ServerConfig.defaults())) {
      server.listenOn(NativeListener.unix(socket, 16));
      String uri = "nbd+unix:///?socket=" + socket;
      Path copy = dir.resolve("copy.raw");
      Tools.run(List.of("nbdcopy", "--connections=4", "--requests=16", uri, copy.toString()), Map.of(), 120)
          .assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(original);

      byte[] replacement = new byte[disk.data.length];
      new Random(8).nextBytes(replacement);
      Files.write(copy, replacement);
      Tools.run(List.of("nbdcopy", "--flush", copy.toString(), uri), Map.of(), 120).assertSuccess();
      assertThat(disk.data).isEqualTo(replacement);
    }
  }

  @Test
  void closingTheServerEndsAnIdleConnectionAndTheListener() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Path socket = dir.resolve("native.sock");
    NbdServer server = new NbdServer(Stacks.configured(List.of(), disk), ServerConfig.defaults());
    server.listenOn(NativeListener.unix(socket, 16));
    try (SocketChannel client = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      client.connect(UnixDomainSocketAddress.of(socket));
      ByteBuffer greeting = ByteBuffer.allocate(18);
      while (greeting.hasRemaining()) {
        assertThat(client.read(greeting)).isPositive();
      }
      assertThat(greeting.getLong(0)).isEqualTo(0x4e42444d41474943L); // NBDMAGIC
      // The server's reader now waits in poll for the client's flags: closing must wake it.
      CompletableFuture.runAsync(server::close).get(60, TimeUnit.SECONDS);
      assertThat(client.read(ByteBuffer.allocate(1))).isEqualTo(-1);
    }
    assertThatThrownBy(() -> SocketChannel.open(UnixDomainSocketAddress.of(socket)))
        .hasMessageContaining("Connection refused");
  }

  @Test
  void stoppingEndsRepliesWaitingForAClientThatDoesNotRead() throws Exception {
    int readLength = 4 << 20;
    ArrayDisk disk = new ArrayDisk(readLength);
    Arrays.fill(disk.data, (byte) 0x55);
    Path socket = dir.resolve("native.sock");
    ServerConfig config = ServerConfig.defaults().withShutdownGrace(Duration.ofMillis(200));
    NbdServer server = new NbdServer(Stacks.configured(List.of(), disk), config);
    server.listenOn(NativeListener.unix(socket, 16));
    try (RawClient client = new RawClient(socket).greet(3)) {
      client.goStructured();
      for (int cookie = 0; cookie < 8; cookie++) {
        client.request(0, Cmd.READ, cookie, 0, readLength);
      }
      // Replies that no longer fit in the socket wait for it, on threads of their own.
      RobustnessTest.await(() -> server.memoryBudget().used() >= readLength);
      server.close();
      RobustnessTest.await(() -> server.memoryBudget().used() == 0 && liveThreadsNamed("nbd-conn-") == 0
          && waitingInNativeCalls() == 0);
    }
  }

  /** Threads of NativeStreamChannel still in poll (a thread in a native call is RUNNABLE). */
  private static long waitingInNativeCalls() {
    return Thread.getAllStackTraces().keySet().stream()
        .filter(thread -> thread.getName().startsWith("native-socket-wait-") && thread.getState() == Thread.State.RUNNABLE)
        .count();
  }

  @Test
  void aVsockListenerTakesItsPortUntilClosed() throws Exception {
    int port;
    try (NativeListener listener = NativeListener.vsock(NativeSockets.VMADDR_PORT_ANY, 16)) {
      port = listener.vsockPort();
      assertThat(Integer.toUnsignedLong(port)).isBetween(1024L, 0xfffffffeL);
      assertThatThrownBy(() -> bindVsock(port)).hasMessageContaining("Address already in use");
    }
    bindVsock(port);
  }

  private static void bindVsock(int port) throws Exception {
    int fd = NativeSockets.socket(NativeSockets.AF_VSOCK, NativeSockets.SOCK_STREAM);
    try {
      NativeSockets.bindVsock(fd, NativeSockets.VMADDR_CID_ANY, port);
    } finally {
      NativeSockets.close(fd);
    }
  }
}
