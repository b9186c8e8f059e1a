package io.jnbd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A loopback TCP relay in front of an HTTP origin that a test can take down and bring back. While
 * down it refuses connections (nothing listens on its port), resets them, or answers every
 * request with one fixed response such as a 503. Going down also cuts the connections already
 * relayed, as a restarting server or a failing load balancer does.
 */
public final class OriginGate implements AutoCloseable {
  private enum Mode { OPEN, REFUSE, RESET, ANSWER }

  private static final byte[] END_OF_HEAD = "\r\n\r\n".getBytes(StandardCharsets.US_ASCII);

  private final int originPort;
  private final int port;
  private final Set<SocketChannel> relayed = ConcurrentHashMap.newKeySet();
  private volatile Mode mode = Mode.OPEN;
  private volatile byte[] answer;
  /** Null while refusing. */
  private ServerSocketChannel listener;

  public OriginGate(int originPort) {
    this.originPort = originPort;
    try {
      port = ((InetSocketAddress) listen(0).getLocalAddress()).getPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The URL of {@code path} through the gate. */
  public String url(String path) {
    return "http://127.0.0.1:" + port + path;
  }

  /** Relays connections to the origin again. */
  public synchronized void open() {
    mode = Mode.OPEN;
    ensureListening();
  }

  /** Closes the port, so that connecting fails with "connection refused". */
  public synchronized void refuse() {
    mode = Mode.REFUSE;
    try {
      listener.close();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    listener = null;
    cutRelayed();
  }

  /** Accepts connections and resets them (RST) at once. */
  public synchronized void reset() {
    mode = Mode.RESET;
    ensureListening();
    cutRelayed();
  }

  /**
   * Answers every request with {@code status} (such as "503 Service Unavailable") and {@code
   * headers} ("Name: value"), an empty body, and a closed connection.
   */
  public synchronized void answer(String status, String... headers) {
    StringBuilder head = new StringBuilder("HTTP/1.1 ").append(status).append("\r\n");
    for (String header : List.of(headers)) {
      head.append(header).append("\r\n");
    }
    head.append("Content-Length: 0\r\nConnection: close\r\n\r\n");
    answer = head.toString().getBytes(StandardCharsets.US_ASCII);
    mode = Mode.ANSWER;
    ensureListening();
    cutRelayed();
  }

  private void ensureListening() {
    if (listener == null) {
      listen(port);
    }
  }

  private ServerSocketChannel listen(int onPort) {
    try {
      ServerSocketChannel channel = ServerSocketChannel.open();
      // The port must be had again after refuse(), while connections cut there linger in TIME_WAIT.
      channel.setOption(StandardSocketOptions.SO_REUSEADDR, true);
      channel.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), onPort));
      listener = channel;
      Thread.ofVirtual().start(() -> accept(channel));
      return channel;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private void accept(ServerSocketChannel channel) {
    while (channel.isOpen()) {
      SocketChannel client;
      try {
        client = channel.accept();
      } catch (IOException e) {
        return;
      }
      Thread.ofVirtual().start(() -> serve(client));
    }
  }

  private void serve(SocketChannel client) {
    try {
      switch (mode) {
        case OPEN -> {
          SocketChannel upstream = SocketChannel.open(new InetSocketAddress(InetAddress.getLoopbackAddress(), originPort));
          relayed.add(client);
          relayed.add(upstream);
          Thread.ofVirtual().start(() -> pump(upstream, client));
          pump(client, upstream);
        }
        case RESET -> resetAndClose(client);
        case ANSWER -> {
          try (client) {
            readRequestHead(client);
            client.write(ByteBuffer.wrap(answer));
          }
        }
        case REFUSE -> client.close();
      }
    } catch (IOException e) {
      // The client went away, or the gate cut the connection.
    }
  }

  private static void readRequestHead(SocketChannel client) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(64 * 1024);
    int matched = 0;
    while (matched < END_OF_HEAD.length) {
      buffer.clear();
      if (client.read(buffer) < 0) {
        return;
      }
      buffer.flip();
      while (buffer.hasRemaining() && matched < END_OF_HEAD.length) {
        byte b = buffer.get();
        matched = b == END_OF_HEAD[matched] ? matched + 1 : b == END_OF_HEAD[0] ? 1 : 0;
      }
    }
  }

  private void pump(SocketChannel from, SocketChannel to) {
    try {
      Relay.pump(from, to);
    } finally {
      relayed.remove(from);
      relayed.remove(to);
    }
  }

  private void cutRelayed() {
    for (SocketChannel channel : relayed) {
      resetAndClose(channel);
    }
  }

  private static void resetAndClose(SocketChannel channel) {
    try (channel) {
      channel.setOption(StandardSocketOptions.SO_LINGER, 0);
    } catch (IOException e) {
      // Already closed.
    }
  }

  @Override
  public synchronized void close() throws IOException {
    if (listener != null) {
      listener.close();
    }
    cutRelayed();
  }
}
