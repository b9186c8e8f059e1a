package io.jnbd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/** Accepts on a Unix domain socket and relays each connection to a loopback TCP port. */
public final class UnixBridge implements AutoCloseable {
  private final ServerSocketChannel listener;
  private final Path path;

  public UnixBridge(Path path, int tcpPort) {
    this.path = path;
    try {
      listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
      listener.bind(UnixDomainSocketAddress.of(path));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Thread.ofVirtual().start(() -> {
      while (listener.isOpen()) {
        try {
          SocketChannel client = listener.accept();
          SocketChannel upstream = SocketChannel.open(new InetSocketAddress(InetAddress.getLoopbackAddress(), tcpPort));
          Thread.ofVirtual().start(() -> Relay.pump(client, upstream));
          Thread.ofVirtual().start(() -> Relay.pump(upstream, client));
        } catch (IOException e) {
          return;
        }
      }
    });
  }

  public Path path() {
    return path;
  }

  @Override
  public void close() throws IOException {
    listener.close();
    Files.deleteIfExists(path);
  }
}
