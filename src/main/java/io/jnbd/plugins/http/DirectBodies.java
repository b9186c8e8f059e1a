package io.jnbd.plugins.http;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Proxy;
import java.net.Socket;
import java.net.SocketException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLSocket;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.SchemePortResolver;
import org.apache.hc.client5.http.impl.io.DefaultHttpClientConnectionOperator;
import org.apache.hc.client5.http.impl.io.DefaultManagedHttpClientConnection;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManagerBuilder;
import org.apache.hc.client5.http.io.DetachedSocketFactory;
import org.apache.hc.client5.http.io.HttpClientConnectionOperator;
import org.apache.hc.client5.http.io.ManagedHttpClientConnection;
import org.apache.hc.client5.http.ssl.TlsSocketStrategy;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.StreamClosedException;
import org.apache.hc.core5.http.URIScheme;
import org.apache.hc.core5.http.config.RegistryBuilder;
import org.apache.hc.core5.http.impl.io.SocketHolder;
import org.apache.hc.core5.http.io.HttpConnectionFactory;
import org.apache.hc.core5.http.io.SessionInputBuffer;

/**
 * Lets a range GET's body go from the socket straight into the NBD reply's direct buffer over
 * plain HTTP. Read through streams, every byte is copied twice in Java before the server sends
 * it: by the JDK's socket stream, from its own direct buffer into the array it was given, and by
 * the plugin, from that array into the reply buffer (the second copy alone was 11-16% of a warm
 * server's CPU for 256 MiB from a local nginx, docs/plugins/http.md).
 *
 * <p>The pool's sockets are made by {@link SocketChannel}s ({@link #poolBuilder}), and a body with
 * a Content-Length on a connection without TLS is a {@link Body}. While {@link #TARGET} is bound
 * to a buffer on the reading thread, a read of the body takes what the kernel already holds for
 * the socket through the channel, straight into that buffer (as much as it holds, not only the
 * 64 KiB the caller's array has room for: fewer reads, and fewer waits for the next bytes), and
 * leaves the array it was given untouched; the caller tells by the buffer's position. When
 * nothing is waiting it reads the ordinary way, so that the socket's timeout (timeout=) bounds
 * the wait: a channel's read has none. Over TLS (and for any other body) HttpClient's own
 * streams serve.
 */
final class DirectBodies {
  /**
   * The buffer that reads of a body on this thread may fill instead of the array they get: such
   * a read leaves the array alone, advances the buffer by the count it returns, and may take up
   * to the buffer's remaining bytes (not only the count asked for, which the array's size limits).
   */
  static final ScopedValue<ByteBuffer> TARGET = ScopedValue.newInstance();

  private DirectBodies() {}

  /** A pool builder whose plain sockets have channels and whose connections make {@link Body}s. */
  static PoolingHttpClientConnectionManagerBuilder poolBuilder() {
    return new PoolingHttpClientConnectionManagerBuilder() {
      @Override
      protected HttpClientConnectionOperator createConnectionOperator(SchemePortResolver ports, DnsResolver dns,
          TlsSocketStrategy tls) {
        return new DefaultHttpClientConnectionOperator(new Sockets(), ports, dns,
            RegistryBuilder.<TlsSocketStrategy>create().register(URIScheme.HTTPS.id, tls).build());
      }
    }.setConnectionFactory(new Connections());
  }

  /** A channel's socket for plain HTTP; HttpClient's usual socket for anything else. */
  private static final class Sockets implements DetachedSocketFactory {
    @Override
    public Socket create(String scheme, Proxy socksProxy) throws IOException {
      return socksProxy != null ? new Socket(socksProxy)
          : URIScheme.HTTP.same(scheme) ? SocketChannel.open().socket() : new Socket();
    }

    @Override
    public Socket create(Proxy socksProxy) throws IOException {
      return create(null, socksProxy);
    }
  }

  private static final class Connections implements HttpConnectionFactory<ManagedHttpClientConnection> {
    private final AtomicLong count = new AtomicLong();

    @Override
    public ManagedHttpClientConnection createConnection(Socket socket) throws IOException {
      Connection connection = new Connection("http-outgoing-" + count.getAndIncrement());
      if (socket != null) {
        connection.bind(socket);
      }
      return connection;
    }
  }

  private static final class Connection extends DefaultManagedHttpClientConnection {
    Connection(String id) {
      super(id);
    }

    @Override
    public void bind(Socket socket) throws IOException {
      if (socket.getChannel() == null) {
        super.bind(socket);
      } else {
        bind(new SocketErrors(socket));
      }
    }

    @Override
    protected InputStream createContentInputStream(long length, SessionInputBuffer buffer, InputStream in) {
      Socket socket = getSocket();
      // A TLS socket layered over a channel's socket answers getChannel() with that channel,
      // whose bytes are still encrypted.
      SocketChannel channel = socket == null || socket instanceof SSLSocket ? null : socket.getChannel();
      return length > 0 && channel != null ? new Body(length, buffer, in, channel)
          : super.createContentInputStream(length, buffer, in);
    }
  }

  /**
   * Streams of a channel's socket that fail as a plain Socket's do. The channel reports a reset
   * connection or a broken pipe as a plain IOException, and a socket closed under a read (by
   * another thread, or by an interrupt) as a {@link ClosedChannelException}, where a Socket
   * throws a {@link SocketException}, which the plugin retries as an unavailable origin.
   */
  private static final class SocketErrors extends SocketHolder {
    SocketErrors(Socket socket) {
      super(socket);
    }

    @Override
    protected InputStream getInputStream(Socket socket) throws IOException {
      InputStream in = socket.getInputStream();
      return new InputStream() {
        @Override
        public int read() throws IOException {
          try {
            return in.read();
          } catch (IOException e) {
            throw asSocketError(e);
          }
        }

        @Override
        public int read(byte[] into, int offset, int count) throws IOException {
          try {
            return in.read(into, offset, count);
          } catch (IOException e) {
            throw asSocketError(e);
          }
        }

        @Override
        public int available() throws IOException {
          return in.available();
        }

        @Override
        public void close() throws IOException {
          in.close();
        }
      };
    }

    @Override
    protected OutputStream getOutputStream(Socket socket) throws IOException {
      OutputStream out = socket.getOutputStream();
      return new OutputStream() {
        @Override
        public void write(int b) throws IOException {
          try {
            out.write(b);
          } catch (IOException e) {
            throw asSocketError(e);
          }
        }

        @Override
        public void write(byte[] from, int offset, int count) throws IOException {
          try {
            out.write(from, offset, count);
          } catch (IOException e) {
            throw asSocketError(e);
          }
        }

        @Override
        public void close() throws IOException {
          out.close();
        }
      };
    }
  }

  /** A failure of the socket itself (not a timeout) as a {@link SocketException}. */
  static IOException asSocketError(IOException e) {
    if (e.getClass() != IOException.class && !(e instanceof ClosedChannelException)) {
      return e;
    }
    SocketException socketError = new SocketException(e.getMessage());
    socketError.initCause(e);
    return socketError;
  }

  /**
   * A body of {@code length} bytes, as HttpClient's ContentLengthInputStream reads it (the bytes
   * the connection has buffered first, then the socket; end of stream at {@code length}; a body
   * cut short is a {@link ConnectionClosedException}; closing reads the rest, so the connection
   * can serve the next request), with the reads into {@link #TARGET}.
   */
  static final class Body extends InputStream {
    private final long length;
    private final SessionInputBuffer buffer;
    private final InputStream socketStream;
    private final SocketChannel channel;
    private long position;
    private boolean closed;

    Body(long length, SessionInputBuffer buffer, InputStream socketStream, SocketChannel channel) {
      this.length = length;
      this.buffer = buffer;
      this.socketStream = socketStream;
      this.channel = channel;
    }

    @Override
    public int read() throws IOException {
      ensureOpen();
      if (position >= length) {
        return -1;
      }
      int b = buffer.read(socketStream);
      if (b < 0) {
        throw cutShort();
      }
      position++;
      return b;
    }

    @Override
    public int read(byte[] into, int offset, int count) throws IOException {
      return read(into, offset, count, TARGET.isBound() ? TARGET.get() : null);
    }

    private int read(byte[] into, int offset, int count, ByteBuffer target) throws IOException {
      ensureOpen();
      if (position >= length) {
        return -1;
      }
      if (count == 0) {
        return 0;
      }
      int max = (int) Math.min(count, length - position);
      int n = target != null && target.remaining() >= max && buffer.length() == 0 && socketStream.available() > 0
          ? readDirect(target, (int) Math.min(target.remaining(), length - position))
          : buffer.read(into, offset, max, socketStream);
      if (n < 0) {
        throw cutShort();
      }
      position += n;
      return n;
    }

    /** Bytes the kernel holds already, so the channel's read (which has no timeout) cannot wait. */
    private int readDirect(ByteBuffer target, int max) throws IOException {
      int limit = target.limit();
      target.limit(target.position() + max);
      try {
        return channel.read(target);
      } catch (IOException e) {
        throw asSocketError(e);
      } finally {
        target.limit(limit);
      }
    }

    @Override
    public int available() {
      return closed ? 0 : (int) Math.min(buffer.length(), length - position);
    }

    @Override
    public long skip(long count) throws IOException {
      byte[] scratch = new byte[(int) Math.min(8192, Math.max(0, count))];
      long skipped = 0;
      while (skipped < count) {
        int n = read(scratch, 0, (int) Math.min(scratch.length, count - skipped), null);
        if (n < 0) {
          break;
        }
        skipped += n;
      }
      return skipped;
    }

    @Override
    public void close() throws IOException {
      if (closed) {
        return;
      }
      try {
        if (position < length) {
          skip(length - position);
        }
      } finally {
        closed = true;
      }
    }

    private void ensureOpen() throws StreamClosedException {
      if (closed) {
        throw new StreamClosedException();
      }
    }

    private ConnectionClosedException cutShort() {
      return new ConnectionClosedException("Premature end of Content-Length delimited message body (expected: %d; received: %d)",
          length, position);
    }
  }
}
