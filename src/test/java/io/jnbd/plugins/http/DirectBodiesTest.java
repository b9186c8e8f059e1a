package io.jnbd.plugins.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Arrays;
import java.util.Random;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.impl.io.SessionInputBufferImpl;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A body read into a bound target takes the socket's waiting bytes straight into it, after the
 * bytes HttpClient buffered with the head, and otherwise behaves as HttpClient's own body stream:
 * exact length, the socket's timeout, a cut-short body and a reset reported as before.
 */
@Timeout(30)
class DirectBodiesTest {
  private ServerSocketChannel listener;
  private SocketChannel origin;
  private SocketChannel client;

  @BeforeEach
  void connect() throws IOException {
    listener = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    client = SocketChannel.open(listener.getLocalAddress());
    origin = listener.accept();
  }

  @AfterEach
  void close() throws IOException {
    client.close();
    origin.close();
    listener.close();
  }

  @Test
  void waitingBytesGoStraightIntoTheTargetAfterTheBufferedOnes() throws Exception {
    byte[] body = new byte[200_000];
    new Random(7).nextBytes(body);
    InputStream socketStream = client.socket().getInputStream();
    SessionInputBufferImpl buffer = new SessionInputBufferImpl(8192);
    // As after a response head: the connection's buffer holds the body's first bytes.
    writeFully(ByteBuffer.wrap(body, 0, 1000));
    while (buffer.length() < 1000) {
      buffer.fillBuffer(socketStream);
    }
    Thread writer = Thread.ofVirtual().start(() -> {
      try {
        writeFully(ByteBuffer.wrap(body, 1000, body.length - 1000));
      } catch (IOException e) {
        throw new AssertionError(e);
      }
    });
    while (socketStream.available() == 0) {
      Thread.sleep(1);
    }
    DirectBodies.Body stream = new DirectBodies.Body(body.length, buffer, socketStream, client);
    ByteBuffer target = ByteBuffer.allocateDirect(body.length);
    byte[] chunk = new byte[65536];
    int[] through = new int[2]; // reads that went through the array, and straight into the target
    ScopedValue.where(DirectBodies.TARGET, target).call(() -> {
      while (target.hasRemaining()) {
        int before = target.position();
        int n = stream.read(chunk, 0, Math.min(chunk.length, target.remaining()));
        assertThat(n).isPositive();
        if (target.position() == before) {
          target.put(chunk, 0, n);
          through[0]++;
        } else {
          assertThat(target.position() - before).isEqualTo(n);
          through[1]++;
        }
      }
      return null;
    });
    writer.join();
    assertThat(stream.read()).isEqualTo(-1);
    assertThat(through[0]).as("reads through the array (the buffered bytes first)").isPositive();
    assertThat(through[1]).as("reads straight into the target").isPositive();
    byte[] got = new byte[body.length];
    target.flip().get(got);
    assertThat(Arrays.equals(got, body)).isTrue();
  }

  @Test
  void unboundItFillsTheArrayAndStopsAtTheLength() throws Exception {
    writeFully(ByteBuffer.wrap(new byte[] {1, 2, 3, 4, 5, 6}));
    InputStream socketStream = client.socket().getInputStream();
    DirectBodies.Body stream = new DirectBodies.Body(4, new SessionInputBufferImpl(8192), socketStream, client);
    byte[] into = new byte[8];
    int n = 0;
    while (n < 4) {
      n += stream.read(into, n, into.length - n);
    }
    assertThat(into).startsWith(1, 2, 3, 4);
    assertThat(stream.read(into, 0, into.length)).isEqualTo(-1);
  }

  @Test
  void withNothingWaitingTheSocketTimeoutStillApplies() throws Exception {
    client.socket().setSoTimeout(200);
    DirectBodies.Body stream = new DirectBodies.Body(10, new SessionInputBufferImpl(8192),
        client.socket().getInputStream(), client);
    ByteBuffer target = ByteBuffer.allocateDirect(10);
    assertThatThrownBy(() -> ScopedValue.where(DirectBodies.TARGET, target).call(() -> stream.read(new byte[10], 0, 10)))
        .isInstanceOf(SocketTimeoutException.class);
  }

  @Test
  void aBodyCutShortFailsAsHttpClientsOwnDoes() throws Exception {
    writeFully(ByteBuffer.wrap(new byte[10]));
    origin.close();
    DirectBodies.Body stream = new DirectBodies.Body(20, new SessionInputBufferImpl(8192),
        client.socket().getInputStream(), client);
    ByteBuffer target = ByteBuffer.allocateDirect(20);
    assertThatThrownBy(() -> ScopedValue.where(DirectBodies.TARGET, target).call(() -> {
      while (true) {
        stream.read(new byte[20], 0, target.remaining());
      }
    })).isInstanceOf(ConnectionClosedException.class).hasMessageContaining("expected: 20; received: 10");
  }

  @Test
  void aSocketsPlainIoErrorBecomesASocketException() {
    IOException reset = new IOException("Connection reset by peer");
    assertThat(DirectBodies.asSocketError(reset)).isInstanceOf(SocketException.class)
        .hasMessage("Connection reset by peer").hasCause(reset);
    assertThat(DirectBodies.asSocketError(new AsynchronousCloseException())).isInstanceOf(SocketException.class);
    SocketTimeoutException timeout = new SocketTimeoutException("Read timed out");
    assertThat(DirectBodies.asSocketError(timeout)).isSameAs(timeout);
  }

  private void writeFully(ByteBuffer bytes) throws IOException {
    while (bytes.hasRemaining()) {
      origin.write(bytes);
    }
  }
}
