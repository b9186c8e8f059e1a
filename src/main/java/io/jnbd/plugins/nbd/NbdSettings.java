package io.jnbd.plugins.nbd;

import io.jnbd.api.ConfigException;
import java.nio.file.Path;
import java.util.List;

/**
 * The nbd plugin's configuration, checked once all keys are in. Null means the key was not given.
 *
 * @param uri the upstream server as an NBD URI
 * @param hostname the upstream server's TCP host
 * @param port the TCP port with hostname=
 * @param socket the upstream server's Unix socket
 * @param command the NBD server to run, handed its socket by socket activation
 * @param args the arguments of command, in order
 * @param exportName the upstream export to ask for (not with uri=, which names it itself)
 * @param dynamicExport pass each client's export name upstream
 * @param retries how many more times a failed connection is tried, a second apart
 * @param shared whether all clients share one upstream connection; null when not said
 */
record NbdSettings(
    String uri,
    String hostname,
    Integer port,
    String socket,
    String command,
    List<String> args,
    String exportName,
    boolean dynamicExport,
    int retries,
    Boolean shared) {

  NbdSettings {
    args = List.copyOf(args);
    int sources = (uri != null ? 1 : 0) + (hostname != null ? 1 : 0) + (socket != null ? 1 : 0) + (command != null ? 1 : 0);
    if (sources != 1) {
      throw new ConfigException("nbd: give exactly one of uri=, hostname=, socket= or command=");
    }
    if (port != null && hostname == null) {
      throw new ConfigException("nbd: port= goes with hostname= (in a URI, write nbd://HOST:PORT)");
    }
    if (!args.isEmpty() && command == null) {
      throw new ConfigException("nbd: arg= goes with command=");
    }
    if (uri != null && exportName != null) {
      throw new ConfigException("nbd: export= cannot be used with uri= (put the export name in the URI)");
    }
    if (command != null && Boolean.FALSE.equals(shared)) {
      throw new ConfigException("nbd: command= always shares one connection (shared=false is not possible)");
    }
    if (dynamicExport && (command != null || Boolean.TRUE.equals(shared))) {
      throw new ConfigException("nbd: dynamic-export=true cannot be used with shared=true or command=");
    }
    if (dynamicExport && exportName != null) {
      throw new ConfigException("nbd: export= cannot be used with dynamic-export=true");
    }
  }

  /** Whether one upstream connection, opened at start-up, serves every client. */
  boolean sharing() {
    return command != null || Boolean.TRUE.equals(shared);
  }

  /** The export to ask the upstream server for, when the URI does not name it. */
  String exportOrDefault() {
    return exportName == null ? "" : exportName;
  }

  /** The upstream server given by uri=, hostname= or socket=; null with command=, which makes its own. */
  Upstream upstream() {
    if (uri != null) {
      return Upstream.fromUri(uri);
    }
    if (hostname != null) {
      return Upstream.tcp(hostname, port == null ? Upstream.DEFAULT_PORT : port, exportOrDefault());
    }
    return socket != null ? Upstream.unix(Path.of(socket), exportOrDefault()) : null;
  }
}
