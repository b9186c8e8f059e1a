package io.jnbd.testing;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.NbdServer;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.server.tls.TlsPolicy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** An in-process jnbd server on a private Unix socket (and optionally TCP) for tests. */
public final class TestServer implements AutoCloseable {
  private final NbdServer server;
  private final Path directory;
  private final Path socket;
  private InetSocketAddress tcp;

  public TestServer(Plugin plugin) {
    this(List.of(), plugin, ServerConfig.defaults());
  }

  public TestServer(List<Filter> filters, Plugin plugin, ServerConfig config) {
    this(Stacks.configured(filters, plugin), config);
  }

  /** Serves a stack whose configuration is complete (see {@link Stacks#configured}). */
  public TestServer(Stack stack, ServerConfig config) {
    this(stack, config, TlsPolicy.OFF);
  }

  /** Serves a configured stack, answering STARTTLS as {@code tls} says. */
  public TestServer(Stack stack, ServerConfig config, TlsPolicy tls) {
    this(new NbdServer(stack, config, tls));
  }

  /** Serves with a server made by the test (one with a timer it holds, say). */
  public TestServer(NbdServer server) {
    this.server = server;
    try {
      directory = Files.createTempDirectory("jnbd-test");
      socket = directory.resolve("nbd.sock");
      server.listenUnix(socket);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Also listens on a free loopback TCP port. */
  public TestServer withTcp() {
    try {
      tcp = server.listenTcp(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return this;
  }

  public Path socket() {
    return socket;
  }

  public int port() {
    return tcp.getPort();
  }

  /** The NBD URI of the default export over the Unix socket. */
  public String uri() {
    return "nbd+unix:///?socket=" + socket;
  }

  public String uri(String exportName) {
    return "nbd+unix:///" + exportName + "?socket=" + socket;
  }

  public NbdServer server() {
    return server;
  }

  @Override
  public void close() throws IOException {
    server.close();
    Files.deleteIfExists(socket);
    Files.deleteIfExists(directory);
  }
}
