package io.jnbd.plugins.nbd;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Values;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * nbdkit's nbd plugin: a proxy to another NBD server, over TCP or a Unix socket, or to a server
 * it runs itself ({@code command=}). Each client gets its own upstream connection, or with
 * {@code shared=true} all clients share one, opened at start-up, whose requests are pipelined
 * and matched by cookie. The export passes the upstream's capabilities, block sizes, extents
 * and errors through unchanged (see docs/plugins/nbd.md).
 */
public final class NbdPlugin implements Plugin {
  private static final Logger log = LoggerFactory.getLogger(NbdPlugin.class);
  private static final Duration RETRY_DELAY = Duration.ofSeconds(1);
  private static final String NO_TLS = "TLS to the upstream server is not supported yet";

  static final List<Parameter> PARAMETERS = List.of(
      new Parameter("uri", "URI", "The upstream server as an NBD URI: nbd://HOST[:PORT]/EXPORT or "
          + "nbd+unix:///EXPORT?socket=PATH (magic key). nbds:// (TLS) is not supported yet."),
      new Parameter("hostname", "HOST", "The upstream server's TCP host."),
      new Parameter("port", "PORT", "The upstream server's TCP port with hostname= (default 10809)."),
      new Parameter("socket", "PATH", "The upstream server's Unix socket."),
      new Parameter("command", "COMMAND", "Run this NBD server (e.g. qemu-nbd) with a socket handed to it by "
          + "systemd socket activation, and stop it at exit; implies shared=true. Needs systemd-socket-activate."),
      new Parameter("arg", "ARG", "One argument of command= (repeat for each, in order)."),
      new Parameter("export", "NAME", "The upstream export to connect to (default \"\"); with uri=, "
          + "put the name in the URI instead."),
      new Parameter("dynamic-export", "true|false", "Pass each client's export name to the upstream "
          + "server, and list its exports (default false). Not with shared=true or command=."),
      new Parameter("retry", "N", "If connecting to the upstream server fails, try N more times, a "
          + "second apart (default 0)."),
      new Parameter("shared", "true|false", "One upstream connection shared by all clients, opened at "
          + "start-up, instead of one per client (default false; true with command=)."),
      new Parameter("vsock", "CID", "Not supported: AF_VSOCK is out of the JVM's reach."),
      new Parameter("socket-fd", "FD", "Not supported: the JVM cannot adopt an inherited socket."),
      new Parameter("tls", "off", "Only off (the default): " + NO_TLS + "."),
      new Parameter("tls-certificates", "DIR", "Not supported yet (TLS)."),
      new Parameter("tls-verify", "BOOL", "Not supported yet (TLS)."),
      new Parameter("tls-username", "NAME", "Not supported yet (TLS)."),
      new Parameter("tls-psk", "FILE", "Not supported yet (TLS)."));

  private final Sleeper sleeper;
  private String uri;
  private String hostname;
  private Integer port;
  private String socket;
  private String command;
  private final List<String> args = new ArrayList<>();
  private String exportName;
  private boolean dynamicExport;
  private int retries;
  private Boolean sharedSetting;
  private NbdSettings settings;

  private Upstream upstream;
  private UpstreamCommand runningCommand;
  private SharedConnection shared;

  public NbdPlugin() {
    this(Sleeper.REAL);
  }

  /** With the wait between connection attempts given, so that tests of retry= do not sleep. */
  NbdPlugin(Sleeper sleeper) {
    this.sleeper = sleeper;
  }

  @Override
  public String name() {
    return "nbd";
  }

  @Override
  public String description() {
    return "proxy to another NBD server";
  }

  @Override
  public String magicConfigKey() {
    return "uri";
  }

  @Override
  public List<Parameter> parameters() {
    return PARAMETERS;
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "uri" -> uri = once(key, uri, value);
      case "hostname" -> hostname = once(key, hostname, value);
      case "port" -> port = once(key, port, parsePort(value));
      case "socket" -> socket = once(key, socket, value);
      case "command" -> command = once(key, command, value);
      case "arg" -> args.add(value);
      case "export" -> exportName = once(key, exportName, value);
      case "dynamic-export" -> dynamicExport = Values.parseBool("nbd: dynamic-export", value);
      case "retry" -> retries = Values.parseInt("nbd: retry", value, 0, Integer.MAX_VALUE);
      case "shared" -> sharedSetting = Values.parseBool("nbd: shared", value);
      case "tls" -> {
        if (!value.trim().equalsIgnoreCase("off")) {
          throw new ConfigException("nbd: tls=" + value + ": " + NO_TLS + " (only tls=off)");
        }
      }
      case "tls-certificates", "tls-verify", "tls-username", "tls-psk" ->
          throw new ConfigException("nbd: " + key + ": " + NO_TLS);
      case "vsock" -> throw new ConfigException("nbd: vsock: AF_VSOCK is not supported");
      case "socket-fd" -> throw new ConfigException("nbd: socket-fd: an inherited socket is not supported (use socket= or command=)");
      default -> throw new ConfigException("nbd: unknown parameter '" + key + "'");
    }
    return true;
  }

  private static <T> T once(String key, T previous, T value) {
    if (previous != null) {
      throw new ConfigException("nbd: " + key + "= given twice");
    }
    return value;
  }

  @Override
  public void configComplete() {
    settings = new NbdSettings(uri, hostname, port, socket, command, args, exportName, dynamicExport, retries, sharedSetting);
    if (settings.command() != null) {
      runningCommand = UpstreamCommand.start(settings.command(), settings.args());
      upstream = runningCommand.upstream(settings.exportOrDefault());
    } else {
      upstream = settings.upstream();
    }
    if (settings.sharing()) {
      try {
        shared = new SharedConnection(connect(upstream));
      } catch (IOException e) {
        unload();
        throw new ConfigException("nbd: " + e.getMessage(), e);
      }
    }
  }

  private static int parsePort(String text) {
    if (text.trim().equalsIgnoreCase("nbd")) {
      return Upstream.DEFAULT_PORT;
    }
    return Values.parseInt("nbd: port", text, 1, 65535);
  }

  /** Connects, trying {@code retry=} more times a second apart when it fails. */
  private NbdClient connect(Upstream target) throws IOException {
    for (int attempt = 0; ; attempt++) {
      try {
        return NbdClient.connect(target);
      } catch (IOException e) {
        if (attempt >= settings.retries()) {
          throw e;
        }
        log.debug("{}; retrying", e.getMessage());
      }
      try {
        sleeper.sleep(RETRY_DELAY);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while waiting to reconnect to " + target);
      }
    }
  }

  @Override
  public Export open(boolean readOnly, String clientExportName) throws IOException {
    if (shared != null) {
      return new UpstreamExport(shared.client(), false);
    }
    Upstream target = settings.dynamicExport() ? upstream.withExportName(clientExportName) : upstream;
    return new UpstreamExport(connect(target), true);
  }

  @Override
  public List<ExportDescription> listExports(boolean readOnly) throws IOException {
    if (!settings.dynamicExport()) {
      return Plugin.super.listExports(readOnly);
    }
    List<ExportDescription> exports = new ArrayList<>();
    for (String name : NbdClient.listExports(upstream)) {
      exports.add(new ExportDescription(name, ""));
    }
    return exports;
  }

  @Override
  public void unload() {
    if (shared != null) {
      shared.close();
    }
    if (runningCommand != null) {
      runningCommand.close();
    }
  }

  /**
   * The connection all clients share with {@code shared=true}. When it breaks, its clients get
   * EIO and the next client to open (or a retry filter reopening) gets a new connection.
   */
  private final class SharedConnection implements AutoCloseable {
    private NbdClient client;

    SharedConnection(NbdClient client) {
      this.client = client;
    }

    synchronized NbdClient client() throws IOException {
      if (client == null) {
        throw new NbdException(Errno.ESHUTDOWN, "nbd: the server is shutting down");
      }
      if (client.isBroken()) {
        client.close();
        client = connect(upstream);
      }
      return client;
    }

    @Override
    public synchronized void close() {
      if (client != null) {
        client.close();
        client = null;
      }
    }
  }
}
