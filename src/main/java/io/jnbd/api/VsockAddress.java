package io.jnbd.api;

import java.io.Serial;
import java.net.SocketAddress;

/**
 * The address of a client on an AF_VSOCK socket ({@code --vsock}): the context id of the
 * virtual machine (or host) it connects from, and its port. Both are unsigned 32-bit numbers.
 */
public final class VsockAddress extends SocketAddress {
  @Serial private static final long serialVersionUID = 1L;
  private final int cid;
  private final int port;

  public VsockAddress(int cid, int port) {
    this.cid = cid;
    this.port = port;
  }

  /** The context id, unsigned. */
  public long cid() {
    return Integer.toUnsignedLong(cid);
  }

  /** The port, unsigned. */
  public long port() {
    return Integer.toUnsignedLong(port);
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof VsockAddress that && that.cid == cid && that.port == port;
  }

  @Override
  public int hashCode() {
    return 31 * cid + port;
  }

  /** {@code vsock:CID:PORT}, for messages. */
  @Override
  public String toString() {
    return "vsock:" + cid() + ":" + port();
  }
}
