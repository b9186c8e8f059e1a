package io.jnbd.server.tls;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.SecurityParameters;
import org.bouncycastle.tls.TlsProtocol;
import org.bouncycastle.tls.TlsServer;
import org.bouncycastle.tls.TlsServerProtocol;

/**
 * A session run by Bouncy Castle's TLS API (pre-shared keys, and certificates under
 * --tls-verify-peer): its blocking protocol, whose input and output sides run independently, so
 * the reader thread and a replying thread can use it at once.
 */
final class BcChannel implements TlsChannel {
  private static final int CHUNK = 64 * 1024;

  private final InputStream input;
  /** What the protocol reads from. */
  private final ChannelInput channelInput;
  private final OutputStream output;
  private final ReadableByteChannel in;
  private final WritableByteChannel out;
  private final String username;
  private final String description;
  /** The reader's staging array; the protocol works on arrays. */
  private final byte[] readChunk = new byte[CHUNK];
  /** The writer's, under the caller's write lock. */
  private final byte[] writeChunk = new byte[CHUNK];

  BcChannel(TlsProtocol protocol, ChannelInput channelInput, ReadableByteChannel in, WritableByteChannel out,
      String username, String description) {
    this.input = protocol.getInputStream();
    this.output = protocol.getOutputStream();
    this.channelInput = channelInput;
    this.in = in;
    this.out = out;
    this.username = username;
    this.description = description;
  }

  /** A Bouncy Castle server that tells, after its handshake, what was negotiated and with whom. */
  interface NegotiatingServer extends TlsServer {
    /** The session's parameters, once the handshake is complete. */
    SecurityParameters negotiated();

    /** The client for -D nbdkit.tls.session=1: "PSK, username alice", "x509, client certificate CN=...". */
    String peer();

    /** The PSK identity, or null. */
    String username();
  }

  /**
   * Runs the server side of the handshake over the channels (bytes the client sent early first)
   * and returns the session; on failure the client has been sent the alert and the channels are
   * closed.
   */
  static BcChannel accept(NegotiatingServer server, ReadableByteChannel in, WritableByteChannel out, ByteBuffer early)
      throws IOException {
    ChannelInput channelInput = new ChannelInput(in, early);
    TlsServerProtocol protocol = new TlsServerProtocol(channelInput, new ChannelOutput(out));
    try {
      protocol.accept(server);
    } catch (IOException | RuntimeException e) {
      protocol.close();
      throw e;
    }
    SecurityParameters parameters = server.negotiated();
    String description = parameters.getNegotiatedVersion() + " " + cipherSuiteName(parameters.getCipherSuite()) + ", "
        + server.peer();
    return new BcChannel(protocol, channelInput, in, out, server.username(), description);
  }

  /** Bouncy Castle names its suites only as constants. */
  static String cipherSuiteName(int suite) {
    for (java.lang.reflect.Field field : CipherSuite.class.getFields()) {
      try {
        if (field.getType() == int.class && field.getInt(null) == suite) {
          return field.getName();
        }
      } catch (IllegalAccessException e) {
        break;
      }
    }
    return "cipher suite 0x" + Integer.toHexString(suite);
  }

  @Override
  public int read(ByteBuffer dst) throws IOException {
    try {
      return readPlaintext(dst);
    } catch (InputEndedForStop e) {
      return -1;
    }
  }

  private int readPlaintext(ByteBuffer dst) throws IOException {
    if (!dst.hasRemaining()) {
      return 0;
    }
    if (dst.hasArray()) {
      int n = input.read(dst.array(), dst.arrayOffset() + dst.position(), dst.remaining());
      if (n > 0) {
        dst.position(dst.position() + n);
      }
      return n;
    }
    int n = input.read(readChunk, 0, Math.min(CHUNK, dst.remaining()));
    if (n > 0) {
      dst.put(readChunk, 0, n);
    }
    return n;
  }

  @Override
  public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
    long written = 0;
    int filled = 0;
    for (int i = offset; i < offset + length; i++) {
      ByteBuffer src = srcs[i];
      while (src.hasRemaining()) {
        int n = Math.min(CHUNK - filled, src.remaining());
        src.get(writeChunk, filled, n);
        filled += n;
        written += n;
        if (filled == CHUNK) {
          output.write(writeChunk, 0, filled);
          filled = 0;
        }
      }
    }
    if (filled > 0) {
      output.write(writeChunk, 0, filled);
    }
    return written;
  }

  @Override
  public boolean hasBufferedInput() {
    try {
      return input.available() > 0;
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public void inputEndingForStop() {
    channelInput.endingForStop = true;
  }

  /** Closing the protocol's stream sends close_notify (and closes the connection below). */
  @Override
  public void sendCloseNotify() throws IOException {
    output.close();
  }

  @Override
  public String username() {
    return username;
  }

  @Override
  public String describeSession() {
    return description;
  }

  @Override
  public boolean isOpen() {
    return in.isOpen();
  }

  /** Closes the connection below, without close_notify: that is {@link #sendCloseNotify}, for a clean end only. */
  @Override
  public void close() throws IOException {
    try {
      in.close();
    } finally {
      out.close();
    }
  }

  /**
   * The end of the input that the server caused by stopping. The protocol ends a session at
   * the end of its input, unless the input was interrupted (as a read timeout would be): then the
   * session can still send close_notify.
   */
  private static final class InputEndedForStop extends InterruptedIOException {
    InputEndedForStop() {
      super("the server is stopping");
    }
  }

  /** Bytes read before the handshake began, then the channel; one reader thread. */
  static final class ChannelInput extends InputStream {
    private final ReadableByteChannel channel;
    private final ByteBuffer early;
    /** Set before the server shuts the input down as it stops. */
    private volatile boolean endingForStop;

    ChannelInput(ReadableByteChannel channel, ByteBuffer early) {
      this.channel = channel;
      this.early = early;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
      if (length == 0) {
        return 0;
      }
      if (early.hasRemaining()) {
        int n = Math.min(length, early.remaining());
        early.get(buffer, offset, n);
        return n;
      }
      int n = channel.read(ByteBuffer.wrap(buffer, offset, length));
      if (n < 0 && endingForStop) {
        throw new InputEndedForStop();
      }
      return n;
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }

  static final class ChannelOutput extends OutputStream {
    private final WritableByteChannel channel;

    ChannelOutput(WritableByteChannel channel) {
      this.channel = channel;
    }

    @Override
    public void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] buffer, int offset, int length) throws IOException {
      ByteBuffer bytes = ByteBuffer.wrap(buffer, offset, length);
      while (bytes.hasRemaining()) {
        channel.write(bytes);
      }
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }
}
