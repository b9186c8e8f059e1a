package io.jnbd.api;

import java.net.SocketAddress;
import java.util.Optional;

/**
 * The client of one connection, as the layers see it: in {@link Layer#preconnect} before the
 * handshake, and through {@link #current()} while an export is opened for it (nbdkit's {@code
 * nbdkit_peer_*} functions).
 *
 * @param address the peer: an {@link java.net.InetSocketAddress} over TCP, a {@link
 *     java.net.UnixDomainSocketAddress} (usually unnamed) on a Unix socket, a {@link
 *     VsockAddress} on AF_VSOCK ({@code --vsock}), or null when the
 *     server talks to one client over stdin and stdout ({@code -s})
 * @param tlsUsername the PSK username the client authenticated with over TLS ({@code --tls-psk};
 *     nbdkit's {@code nbdkit_peer_tls_username}), or null: no TLS yet, or TLS with certificates
 */
public record Client(SocketAddress address, String tlsUsername) {
  private static final ScopedValue<Client> CURRENT = ScopedValue.newInstance();

  /** A client that has not started TLS. */
  public Client(SocketAddress address) {
    this(address, null);
  }

  /**
   * The client whose export is being opened, when called from {@link Layer#open} or {@link
   * Filter#open} (and {@code preconnect}) on the server's thread; empty elsewhere, as in request
   * threads.
   */
  public static Optional<Client> current() {
    return CURRENT.isBound() ? Optional.of(CURRENT.get()) : Optional.empty();
  }

  /** For the server: runs {@code operation} with this client as {@link #current()}. */
  public <T, X extends Throwable> T callAs(ScopedValue.CallableOp<T, X> operation) throws X {
    return ScopedValue.where(CURRENT, this).call(operation);
  }
}
