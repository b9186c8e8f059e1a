package io.jnbd.server;

import io.jnbd.server.tls.TlsChannel;
import io.jnbd.server.tls.TlsPolicy;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SocketChannel;
import java.nio.channels.WritableByteChannel;

/**
 * Blocking byte I/O for one connection: a client's, or the nbd plugin's to its upstream server
 * (an {@link EOFException} from it says "client" either way). Reads are buffered, so that the
 * 28-byte request headers of a busy client cost one system call per batch rather than one each;
 * large payloads go straight from the channel into the caller's buffer. Writes are not thread-safe: the caller
 * holds the connection's reply lock. After STARTTLS ({@link #startTls}) the same calls read and
 * write through TLS; the channels change only then, on the reader thread, before any request
 * thread exists.
 */
public final class Wire implements AutoCloseable {
  private static final int READ_BUFFER = 64 * 1024;
  /**
   * The socket send buffer of a server's TLS connection over a Unix socket (the kernel doubles
   * it), in place of the 4 MiB a plain connection asks for ({@code NbdServer.SEND_BUFFER_BYTES}).
   * With up to 8 MiB queued per connection the encrypted records left the CPU's caches before the
   * client read them: nbdcopy spent ~0.1 s more in the kernel per GiB than against nbdkit, its
   * copy out of the socket three times as costly (perf). TLS replies are mostly written by the
   * connection's reader, which waits in the kernel for room; plain replies are written by request
   * threads that park on a full socket, and there the deep buffer still pays. Over TCP the buffer
   * must also hold what is on its way (1.25 MB on a 10 ms path at 1 Gbit/s): TCP keeps 4 MiB.
   */
  private static final int TLS_SEND_BUFFER_BYTES = 256 * 1024;

  /** The connection itself, plain: what shutdownInput and close act on. */
  private final ReadableByteChannel rawIn;
  private final WritableByteChannel rawOut;
  private ReadableByteChannel in;
  private WritableByteChannel out;
  /** The TLS session after STARTTLS, which may hold input of its own; else null. */
  private TlsChannel tls;
  private final ByteBuffer readBuffer = ByteBuffer.allocateDirect(READ_BUFFER).flip();
  /** When the write under way last moved bytes (System.nanoTime), or 0 when none is. */
  private volatile long lastWriteProgress;

  public Wire(ReadableByteChannel in, WritableByteChannel out) {
    this.rawIn = in;
    this.rawOut = out;
    this.in = in;
    this.out = out;
  }

  /**
   * Runs the TLS handshake (the client has just been sent STARTTLS's ACK) and from then on reads
   * and writes through TLS. Bytes the client sent early, already buffered here, go to the handshake.
   */
  TlsChannel startTls(TlsPolicy policy, String peer) throws IOException {
    TlsChannel channel = startTls((in, out, early) -> policy.upgrade(in, out, early, peer));
    if (rawOut instanceof SocketChannel socket && socket.getLocalAddress() instanceof UnixDomainSocketAddress) {
      try {
        socket.setOption(StandardSocketOptions.SO_SNDBUF, TLS_SEND_BUFFER_BYTES);
      } catch (IOException e) {
        // The connection still works with the buffer it has; a closed one fails at its next read.
      }
    }
    return channel;
  }

  /** A TLS handshake over the plain connection, given the bytes already read from it. */
  public interface TlsUpgrade {
    TlsChannel handshake(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early) throws IOException;
  }

  /**
   * Runs a TLS handshake (the client's, for the nbd plugin, once its STARTTLS was acknowledged)
   * and from then on reads and writes through TLS.
   */
  public TlsChannel startTls(TlsUpgrade upgrade) throws IOException {
    ByteBuffer early = ByteBuffer.allocate(readBuffer.remaining()).put(readBuffer).flip();
    TlsChannel channel = upgrade.handshake(rawIn, rawOut, early);
    tls = channel;
    in = channel;
    out = channel;
    return channel;
  }

  /** Fills dst to its limit. Throws EOFException when the peer closes first. */
  public void readFully(ByteBuffer dst) throws IOException {
    if (readBuffer.hasRemaining()) {
      int n = Math.min(readBuffer.remaining(), dst.remaining());
      dst.put(dst.position(), readBuffer, readBuffer.position(), n);
      dst.position(dst.position() + n);
      readBuffer.position(readBuffer.position() + n);
    }
    while (dst.hasRemaining()) {
      if (dst.remaining() >= READ_BUFFER) {
        if (in.read(dst) < 0) {
          throw new EOFException("client closed the connection");
        }
      } else {
        fillReadBuffer();
        int n = Math.min(readBuffer.remaining(), dst.remaining());
        dst.put(dst.position(), readBuffer, readBuffer.position(), n);
        dst.position(dst.position() + n);
        readBuffer.position(readBuffer.position() + n);
      }
    }
  }

  /**
   * Whether the connection is encrypted: then its replies are encrypted one after the other
   * however many threads write them, each in one TLS engine under the write lock.
   */
  boolean isTls() {
    return tls != null;
  }

  /** Whether bytes the client sent are already read in and waiting here. */
  boolean hasBufferedInput() {
    return readBuffer.hasRemaining() || (tls != null && tls.hasBufferedInput());
  }

  /** Reads and discards n bytes. */
  public void skip(long n) throws IOException {
    ByteBuffer scratch = ByteBuffer.allocate((int) Math.min(n, READ_BUFFER));
    long left = n;
    while (left > 0) {
      scratch.clear().limit((int) Math.min(left, scratch.capacity()));
      readFully(scratch);
      left -= scratch.limit();
    }
  }

  private void fillReadBuffer() throws IOException {
    readBuffer.clear();
    try {
      if (in.read(readBuffer) < 0) {
        throw new EOFException("client closed the connection");
      }
    } finally {
      readBuffer.flip();
    }
  }

  /** Writes every buffer completely, with one gathering write where the channel allows. */
  public void write(ByteBuffer... buffers) throws IOException {
    lastWriteProgress = System.nanoTime();
    try {
      if (out instanceof GatheringByteChannel gathering) {
        long left = 0;
        for (ByteBuffer buffer : buffers) {
          left += buffer.remaining();
        }
        while (left > 0) {
          left -= gathering.write(buffers);
          lastWriteProgress = System.nanoTime();
        }
      } else {
        for (ByteBuffer buffer : buffers) {
          while (buffer.hasRemaining()) {
            out.write(buffer);
            lastWriteProgress = System.nanoTime();
          }
        }
      }
    } finally {
      lastWriteProgress = 0;
    }
  }

  /**
   * Whether file regions can go out by sendfile(2): the connection is a plain socket the JDK
   * knows (TCP or Unix), not TLS and not a vsock descriptor.
   */
  boolean canSendFile() {
    return out instanceof SocketChannel;
  }

  /**
   * Whether read-only buffers that jnbd did not allocate (a plugin's views of its memory) can be
   * written: everywhere but over a vsock descriptor, whose native send is given only jnbd's
   * own buffers.
   */
  boolean canWriteViews() {
    return !(out instanceof NativeStreamChannel);
  }

  /**
   * Sends up to {@code length} bytes of {@code file} from {@code position} straight from the page
   * cache to the socket ({@link #canSendFile} only), and returns how many went. That may be fewer,
   * and 0, without waiting: once a virtual thread has written to the socket it is non-blocking
   * for good, and the JDK returns from sendfile's EAGAIN rather than wait. The caller then
   * writes the rest with {@link #write}, which waits properly.
   */
  long sendFile(FileChannel file, long position, long length) throws IOException {
    lastWriteProgress = System.nanoTime();
    try {
      return file.transferTo(position, length, out);
    } finally {
      lastWriteProgress = 0;
    }
  }

  /**
   * How long a write has been waiting for the client to take more bytes, in nanoseconds at
   * {@code now}; 0 when no write is under way.
   */
  long writeStalledFor(long now) {
    long progress = lastWriteProgress;
    return progress == 0 ? 0 : now - progress;
  }

  /** Ends TLS, when it is on, with close_notify; the caller has written its last reply. */
  void sendCloseNotify() throws IOException {
    if (tls != null) {
      tls.sendCloseNotify();
    }
  }

  /** Makes a blocked reader see end of stream, leaving replies (and close_notify) free to go out. */
  void shutdownInput() {
    if (tls != null) {
      tls.inputEndingForStop();
    }
    try {
      if (rawIn instanceof SocketChannel socket) {
        socket.shutdownInput();
      } else if (rawIn instanceof NativeStreamChannel socket) {
        socket.shutdownInput();
      } else {
        rawIn.close();
      }
    } catch (IOException ignored) {
      // The connection is going away anyway.
    }
  }

  @Override
  public void close() {
    try {
      rawIn.close();
    } catch (IOException ignored) {
      // Nothing left to do for a channel that fails to close.
    }
    try {
      rawOut.close();
    } catch (IOException ignored) {
      // As above.
    }
  }
}
