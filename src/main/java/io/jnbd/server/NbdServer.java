package io.jnbd.server;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.channels.ByteChannel;
import java.nio.file.Path;

/**
 * The NBD server: listens on TCP and Unix sockets and serves each client connection from the
 * {@link Stack}. (Skeleton: the implementation lands with the protocol work.)
 */
public final class NbdServer implements AutoCloseable {
  private final Stack stack;
  private final ServerConfig config;

  public NbdServer(Stack stack, ServerConfig config) {
    this.stack = stack;
    this.config = config;
  }

  /** Starts accepting on a TCP address; returns the bound address (port 0 picks a free one). */
  public InetSocketAddress listenTcp(InetSocketAddress address) throws IOException {
    throw new UnsupportedOperationException("not yet");
  }

  /** Starts accepting on a Unix socket, created at path (an existing socket file is replaced). */
  public void listenUnix(Path path) throws IOException {
    throw new UnsupportedOperationException("not yet");
  }

  /** Serves one client on an already connected channel (-s), returning when it disconnects. */
  public void serveOne(ByteChannel channel) throws IOException {
    throw new UnsupportedOperationException("not yet");
  }

  /** Blocks until {@link #close} is called (or the server otherwise stops). */
  public void awaitTermination() throws InterruptedException {
    throw new UnsupportedOperationException("not yet");
  }

  /** Stops accepting, finishes or fails in-flight requests, closes connections, unloads. */
  @Override
  public void close() {}
}
