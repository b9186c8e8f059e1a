package io.jnbd.server.tls;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * A PSK session: Bouncy Castle's blocking protocol, whose input and output sides run
 * independently, so the reader thread and a replying thread can use it at once.
 */
final class PskChannel implements TlsChannel {
  private static final int CHUNK = 64 * 1024;

  private final InputStream input;
  private final OutputStream output;
  private final ReadableByteChannel in;
  private final WritableByteChannel out;
  private final String username;
  private final String description;
  /** The reader's staging array; the protocol works on arrays. */
  private final byte[] readChunk = new byte[CHUNK];
  /** The writer's, under the caller's write lock. */
  private final byte[] writeChunk = new byte[CHUNK];

  PskChannel(InputStream input, OutputStream output, ReadableByteChannel in, WritableByteChannel out, String username,
      String description) {
    this.input = input;
    this.output = output;
    this.in = in;
    this.out = out;
    this.username = username;
    this.description = description;
  }

  @Override
  public int read(ByteBuffer dst) throws IOException {
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
  public int write(ByteBuffer src) throws IOException {
    return (int) write(new ByteBuffer[] {src}, 0, 1);
  }

  @Override
  public long write(ByteBuffer[] srcs) throws IOException {
    return write(srcs, 0, srcs.length);
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
}
