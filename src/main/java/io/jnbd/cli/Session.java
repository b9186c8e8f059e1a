package io.jnbd.cli;

import io.jnbd.server.NbdServer;
import io.jnbd.server.Stack;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import sun.misc.Signal;

/**
 * One running server started from the command line and everything that must go when it stops:
 * the listener, a private socket directory, the pidfile. It stops once, whichever comes first:
 * the caller closing it, SIGINT/SIGTERM (a shutdown hook), or the parent exiting
 * (--exit-with-parent).
 */
final class Session implements AutoCloseable {
  private final NbdServer server;
  private final Options options;
  private final TlsMode tls;
  private final Lock closeLock = new ReentrantLock();
  private final Thread shutdownHook = new Thread(this::close, "jnbd-shutdown");
  private Path privateDirectory;
  private Path socket;
  private InetSocketAddress tcp;
  /** The AF_VSOCK port listened on with --vsock, else 0. */
  private int vsockPort;
  private Pidfile pidfile;
  private boolean closed;

  private Session(NbdServer server, Options options, TlsMode tls) {
    this.server = server;
    this.options = options;
    this.tls = tls;
  }

  /** Starts listening as the options say and writes the pidfile once clients can connect. */
  static Session start(Stack stack, Options options) throws IOException {
    // Taken before the pidfile exists: a parent that waits for the pidfile and then exits (as
    // ProcessIT's does) would otherwise leave us asking for the parent after it is gone, and
    // watching the process that adopted us instead.
    Optional<ProcessHandle> parent = options.exitWithParent ? ProcessHandle.current().parent() : Optional.empty();
    TlsPolicy tls = TlsPolicy.load(options.tlsSettings());
    Session session = new Session(new NbdServer(stack, options.serverConfig(), tls), options, tls.mode());
    session.server.onShutdownRequest(session::close);
    Runtime.getRuntime().addShutdownHook(session.shutdownHook);
    try {
      session.listen();
      parent.ifPresent(handle -> handle.onExit().thenRun(session::close));
    } catch (IOException | RuntimeException e) {
      session.close();
      throw e;
    }
    return session;
  }

  private void listen() throws IOException {
    if (options.single) {
      return;
    }
    if (options.passedSockets > 0) {
      server.listenOn(SocketActivation.takeListener(options.passedSockets));
    } else if (options.privateSocket() || options.unix != null) {
      listenUnix();
    } else if (options.vsock) {
      vsockPort = server.listenVsock(options.port != null ? options.port : Options.NBD_PORT);
    } else {
      int port = options.port != null ? options.port : Options.NBD_PORT;
      tcp = server.listenTcp(new InetSocketAddress(tcpAddress(), port), options.tcpFamily);
    }
    if (options.pidfile != null) {
      pidfile = Pidfile.write(options.pidfile);
    }
  }

  private void listenUnix() throws IOException {
    if (options.privateSocket()) {
      privateDirectory = Files.createTempDirectory("jnbd");
      socket = privateDirectory.resolve("socket");
    } else {
      socket = options.unix.toAbsolutePath();
    }
    Path path = socket;
    if (options.selinuxLabel != null) {
      SelinuxLabel.apply(options.selinuxLabel, () -> server.listenUnix(path));
    } else {
      server.listenUnix(path);
    }
  }

  /** The address to listen on: -i's first address of the family -4 or -6 asks for, else the wildcard of that family. */
  private InetAddress tcpAddress() throws IOException {
    Class<? extends InetAddress> wanted = options.tcpFamily == StandardProtocolFamily.INET ? Inet4Address.class
        : options.tcpFamily == StandardProtocolFamily.INET6 ? Inet6Address.class : InetAddress.class;
    if (options.ipaddr == null) {
      return options.tcpFamily == StandardProtocolFamily.INET ? InetAddress.getByName("0.0.0.0")
          : options.tcpFamily == StandardProtocolFamily.INET6 ? InetAddress.getByName("::") : null;
    }
    for (InetAddress address : InetAddress.getAllByName(options.ipaddr)) {
      if (wanted.isInstance(address)) {
        return address;
      }
    }
    throw new IOException("-i " + options.ipaddr + ": no " + (wanted == Inet4Address.class ? "IPv4" : "IPv6")
        + " address (-" + (wanted == Inet4Address.class ? "4" : "6") + " was given)");
  }

  NbdServer server() {
    return server;
  }

  /**
   * The NBD URI that reaches the default export, as nbdkit gives it to --run: nbds when TLS is
   * required (a client that may choose keeps the plain scheme, as nbdkit's URI does).
   */
  String uri() {
    String export = escape(options.exportName == null ? "" : options.exportName);
    String scheme = tls == TlsMode.REQUIRE ? "nbds" : "nbd";
    if (socket != null) {
      return scheme + "+unix:///" + export + "?socket=" + escape(socket.toString());
    }
    if (vsockPort != 0) {
      // Context id 1 is this machine, where the --run command runs.
      return scheme + "+vsock://1:" + Integer.toUnsignedString(vsockPort) + (export.isEmpty() ? "" : "/" + export);
    }
    String host;
    if (options.ipaddr == null) {
      host = "localhost";
    } else {
      InetAddress address = tcp.getAddress();
      host = address instanceof Inet6Address ? "[" + address.getHostAddress() + "]" : address.getHostAddress();
    }
    return scheme + "://" + host + ":" + tcp.getPort() + (export.isEmpty() ? "" : "/" + export);
  }

  /** The variables that nbdkit sets for the --run command. */
  Map<String, String> environment() {
    Map<String, String> env = new LinkedHashMap<>();
    env.put("uri", uri());
    env.put("nbd", uri());
    env.put("unixsocket", socket == null ? "" : socket.toString());
    env.put("port", tcp != null ? Integer.toString(tcp.getPort()) : vsockPort != 0 ? Integer.toUnsignedString(vsockPort) : "");
    env.put("exportname", options.exportName == null ? "" : options.exportName);
    env.put("tls", Integer.toString(tls.ordinal()));
    return env;
  }

  /**
   * SIGTERM and SIGINT stop a serving jnbd as they stop nbdkit: no new clients, in-flight requests
   * finish, caches write back as connections close, the socket and pidfile go, and the exit
   * status is 0 (left to the shutdown hook, the JVM would exit with 128 + the signal's number).
   */
  void stopOnSignals() {
    for (String name : List.of("TERM", "INT")) {
      Signal.handle(new Signal(name), signal -> Thread.ofPlatform().name("jnbd-stop").start(this::close));
    }
  }

  /** Blocks until the server stops (a signal, or the parent exiting). */
  void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  /**
   * Stops the server (which removes its socket), unloads the stack, and removes the pidfile and
   * any private socket directory.
   */
  @Override
  public void close() {
    closeLock.lock(); // a second caller waits until the first has cleaned up
    try {
      if (closed) {
        return;
      }
      closed = true;
      server.close();
      if (pidfile != null) {
        pidfile.remove();
      }
      if (privateDirectory != null) {
        Files.deleteIfExists(privateDirectory);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      closeLock.unlock();
      if (Thread.currentThread() != shutdownHook) {
        try {
          Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException alreadyExiting) {
          // The hook is running or about to; it will find the session closed.
        }
      }
    }
  }

  /** Percent-encodes all but unreserved characters and '/', for a path or query in a URI. */
  static String escape(String text) {
    StringBuilder out = new StringBuilder();
    for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
      char c = (char) (b & 0xff);
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~/".indexOf(c) >= 0) {
        out.append(c);
      } else {
        out.append('%').append(String.format("%02X", (int) c));
      }
    }
    return out.toString();
  }
}
