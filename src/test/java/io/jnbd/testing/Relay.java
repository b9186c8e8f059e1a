package io.jnbd.testing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/** One direction of a relayed TCP or Unix connection, for the test proxies and bridges. */
final class Relay {
  private Relay() {}

  /** Copies until {@code from} ends or either side fails, then closes both. */
  static void pump(SocketChannel from, SocketChannel to) {
    ByteBuffer buffer = ByteBuffer.allocate(64 * 1024);
    try (from; to) {
      while (from.read(buffer) >= 0) {
        buffer.flip();
        while (buffer.hasRemaining()) {
          to.write(buffer);
        }
        buffer.clear();
      }
    } catch (IOException e) {
      // Either side closed, or was cut: the relay ends.
    }
  }
}
