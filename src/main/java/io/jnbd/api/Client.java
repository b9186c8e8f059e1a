package io.jnbd.api;

import java.net.SocketAddress;

/**
 * The client of one connection, as the layers see it before the handshake ({@link
 * Layer#preconnect}).
 *
 * @param address the peer: an {@link java.net.InetSocketAddress} over TCP, a {@link
 *     java.net.UnixDomainSocketAddress} (usually unnamed) on a Unix socket, or null when the
 *     server talks to one client over stdin and stdout ({@code -s})
 */
public record Client(SocketAddress address) {}
