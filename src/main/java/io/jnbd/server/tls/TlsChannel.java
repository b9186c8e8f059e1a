package io.jnbd.server.tls;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;

/**
 * A connection after a finished TLS handshake: reads give the client's plaintext, writes are
 * encrypted. Reading and writing may go on at once from two threads; writes must not overlap
 * (the connection's reply lock sees to that). Closing closes the connection below too.
 */
public interface TlsChannel extends ByteChannel, GatheringByteChannel {
  /**
   * Whether the client's bytes are already here, read from the socket but not yet returned: then
   * more requests are waiting, which the connection must not leave behind one it runs itself.
   */
  boolean hasBufferedInput();

  /**
   * Sends the close_notify alert: the server will write nothing more. For a clean end (after
   * DISC, or when the server stops), once the last reply is out; the connection stays open for
   * {@link #close}.
   */
  void sendCloseNotify() throws IOException;

  /**
   * The server is stopping and is about to shut the connection's input down to wake the reader:
   * the end of stream that follows is the server's doing, and must leave the session able to send
   * close_notify once the last reply is out.
   */
  default void inputEndingForStop() {}

  /** The PSK identity the client authenticated with, or null (certificates, or none). */
  String username();

  /** Protocol, cipher suite and peer, for -D nbdkit.tls.session=1; never a secret. */
  String describeSession();

  /** Every write is a gathering write. */
  @Override
  default int write(ByteBuffer src) throws IOException {
    return (int) write(new ByteBuffer[] {src}, 0, 1);
  }

  @Override
  default long write(ByteBuffer[] srcs) throws IOException {
    return write(srcs, 0, srcs.length);
  }
}
