package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.tls.ClientTls;
import io.jnbd.server.tls.TlsChannel;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.server.tls.TlsSettings;
import io.jnbd.testing.TestPki;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The socket send buffer of a connection that starts TLS: small over a Unix socket, where a deep
 * one lets records go cold before the client reads them; as it was over TCP, where it must also
 * cover what is in transit (Wire's TLS_SEND_BUFFER_BYTES says why).
 */
class TlsSendBufferTest {
  /** What NbdServer asks for on every accepted connection. */
  private static final int PLAIN_SEND_BUFFER = 4 << 20;

  @TempDir Path dir;

  @Test
  void overAUnixSocketTlsAsksForASmallSendBuffer() throws Exception {
    assertThat(sendBufferAfterStartTls(ServerSocketChannel.open(StandardProtocolFamily.UNIX),
        UnixDomainSocketAddress.of(dir.resolve("s.sock")))).isLessThanOrEqualTo(1 << 20);
  }

  @Test
  void overTcpTlsKeepsTheSendBufferItHad() throws Exception {
    assertThat(sendBufferAfterStartTls(ServerSocketChannel.open(StandardProtocolFamily.INET),
        new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))).isGreaterThanOrEqualTo(PLAIN_SEND_BUFFER);
  }

  /** The server side's SO_SNDBUF (as the kernel reports it) once a client's TLS handshake is done. */
  private int sendBufferAfterStartTls(ServerSocketChannel listener, SocketAddress address) throws Exception {
    TlsPolicy tls = TlsPolicy.load(new TlsSettings(TlsMode.REQUIRE, TestPki.certificates(dir.resolve("pki"), "test CA"),
        null, false, false));
    try (listener; SocketChannel client = SocketChannel.open(listener.bind(address).getLocalAddress());
        SocketChannel server = listener.accept()) {
      server.setOption(StandardSocketOptions.SO_SNDBUF, PLAIN_SEND_BUFFER);
      CompletableFuture<TlsChannel> clientSide = CompletableFuture.supplyAsync(() -> {
        try {
          return ClientTls.configure(TlsMode.REQUIRE, null, false, null, null)
              .handshake(client, client, ByteBuffer.allocate(0), null, 0);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
      new Wire(server, server).startTls(tls, "test");
      clientSide.get(30, TimeUnit.SECONDS);
      return server.getOption(StandardSocketOptions.SO_SNDBUF);
    }
  }
}
