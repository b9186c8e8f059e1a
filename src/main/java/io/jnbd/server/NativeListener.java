package io.jnbd.server;

import io.jnbd.util.NativeSockets;
import java.io.Closeable;
import io.jnbd.api.VsockAddress;
import java.io.IOException;
import java.net.SocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Path;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A listening stream socket of a family the JDK does not open (AF_VSOCK, for --vsock), on its
 * raw descriptor. One thread accepts; {@link #close} wakes it through a pipe, because closing
 * or shutting down a listening AF_VSOCK socket does not end an accept in progress.
 */
final class NativeListener implements Closeable {
  private final int fd;
  private final int[] wakePipe;
  private final String description;
  private final Lock acceptLock = new ReentrantLock();
  private volatile boolean closed;
  private boolean released;

  private NativeListener(int fd, String description) throws IOException {
    this.fd = fd;
    this.description = description;
    try {
      this.wakePipe = NativeSockets.pipe();
    } catch (IOException e) {
      NativeSockets.close(fd);
      throw e;
    }
  }

  /** Listens on an AF_VSOCK port on every context id of this machine; port -1 picks a free one. */
  static NativeListener vsock(int port, int backlog) throws IOException {
    int fd = NativeSockets.socket(NativeSockets.AF_VSOCK, NativeSockets.SOCK_STREAM | NativeSockets.SOCK_NONBLOCK);
    try {
      NativeSockets.bindVsock(fd, NativeSockets.VMADDR_CID_ANY, port);
      NativeSockets.listen(fd, backlog);
      return new NativeListener(fd, "vsock port " + NativeSockets.vsockPort(fd));
    } catch (IOException e) {
      NativeSockets.close(fd);
      String where = port == NativeSockets.VMADDR_PORT_ANY ? "a free port" : "port " + port;
      throw new IOException("cannot listen on AF_VSOCK " + where + ": " + e.getMessage(), e);
    }
  }

  /**
   * Listens on a Unix socket path through the same native calls: the tests serve real clients
   * through this class where no AF_VSOCK client can connect.
   */
  static NativeListener unix(Path path, int backlog) throws IOException {
    int fd = NativeSockets.socket(NativeSockets.AF_UNIX, NativeSockets.SOCK_STREAM | NativeSockets.SOCK_NONBLOCK);
    try {
      NativeSockets.bindUnix(fd, path.toString());
      NativeSockets.listen(fd, backlog);
      return new NativeListener(fd, "unix socket " + path);
    } catch (IOException e) {
      NativeSockets.close(fd);
      throw e;
    }
  }

  /** The vsock port listened on. */
  int vsockPort() throws IOException {
    return NativeSockets.vsockPort(fd);
  }

  /** A connected client and its address: a {@link VsockAddress}, or null for another family. */
  record Accepted(NativeStreamChannel channel, SocketAddress address) {}

  /** Waits for the next client; ClosedChannelException once {@link #close} was called. */
  Accepted accept() throws IOException {
    acceptLock.lock();
    try {
      while (true) {
        if (closed) {
          throw new ClosedChannelException();
        }
        NativeSockets.poll(fd, NativeSockets.POLLIN, wakePipe[0]);
        if (closed) {
          throw new ClosedChannelException();
        }
        int[] peer = {-2, -2};
        int client = NativeSockets.accept(fd, peer); // -1: the client went away before we took it
        if (client >= 0) {
          return new Accepted(new NativeStreamChannel(client),
              peer[0] == -2 ? null : new VsockAddress(peer[0], peer[1]));
        }
      }
    } finally {
      acceptLock.unlock();
    }
  }

  @Override
  public String toString() {
    return description;
  }

  @Override
  public void close() {
    closed = true;
    try {
      NativeSockets.wake(wakePipe[1]);
    } catch (IOException e) {
      // The pipe is ours and empty: cannot happen, and an accept in progress would only wait longer.
    }
    acceptLock.lock();
    try {
      if (!released) {
        released = true;
        NativeSockets.close(fd);
        NativeSockets.close(wakePipe[0]);
        NativeSockets.close(wakePipe[1]);
      }
    } finally {
      acceptLock.unlock();
    }
  }
}
