package io.jnbd.server.tls;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/** Runs the server side of a TLS handshake over a connection that has just acknowledged STARTTLS. */
interface Handshaker {
  /**
   * Blocks until the handshake is done.
   *
   * @param early bytes the client sent after STARTTLS that were already read from {@code in}
   * @throws IOException when the handshake fails; the client has been sent an alert where possible
   */
  TlsChannel handshake(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early) throws IOException;

  /** What the server offers, for the start-up log: "x509 certificates from DIR" or "PSK from FILE". */
  String describe();
}
