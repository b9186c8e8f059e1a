package io.jnbd.plugins.nbd;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.net.UnixDomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Where the upstream NBD server is: a TCP host and port, or a Unix socket, and the export to ask
 * for. Host names are resolved at each connection, so a retried connection sees a changed
 * address.
 *
 * @param host the TCP host, or null for a Unix socket
 * @param port the TCP port
 * @param socket the Unix socket, or null for TCP
 * @param exportName the export to ask for
 * @param tlsScheme whether it was given as an nbds URI, which demands TLS
 */
record Upstream(String host, int port, Path socket, String exportName, boolean tlsScheme) {
  static final int DEFAULT_PORT = 10809;

  static Upstream tcp(String host, int port, String exportName) {
    return new Upstream(host, port, null, exportName, false);
  }

  static Upstream unix(Path socket, String exportName) {
    return new Upstream(null, 0, socket, exportName, false);
  }

  /**
   * Parses an NBD URI as libnbd does: {@code nbd://HOST[:PORT][/EXPORT]} and {@code
   * nbd+unix:///[EXPORT]?socket=PATH}, and their TLS forms {@code nbds://} and {@code
   * nbds+unix://}. vsock is refused with the reason.
   */
  static Upstream fromUri(String text) {
    URI uri;
    try {
      uri = new URI(text);
    } catch (URISyntaxException e) {
      throw new ConfigException("nbd: uri: not a URI: " + e.getMessage());
    }
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    String path = uri.getPath() == null ? "" : uri.getPath();
    String exportName = path.startsWith("/") ? path.substring(1) : path;
    String socket = queryParameter(uri, "socket");
    boolean tls = scheme.startsWith("nbds");
    return switch (tls ? "nbd" + scheme.substring(4) : scheme) {
      case "nbd" -> {
        if (uri.getHost() == null) {
          throw new ConfigException("nbd: uri: no host in '" + text + "' (nbd://HOST[:PORT]/EXPORT)");
        }
        String host = uri.getHost();
        if (host.startsWith("[") && host.endsWith("]")) {
          host = host.substring(1, host.length() - 1);
        }
        yield new Upstream(host, uri.getPort() < 0 ? DEFAULT_PORT : uri.getPort(), null, exportName, tls);
      }
      case "nbd+unix" -> {
        if (socket == null || socket.isEmpty()) {
          throw new ConfigException("nbd: uri: nbd+unix needs ?socket=PATH: '" + text + "'");
        }
        if (uri.getRawAuthority() != null) {
          throw new ConfigException("nbd: uri: nbd+unix takes no host: '" + text + "'");
        }
        yield new Upstream(null, 0, Path.of(socket), exportName, tls);
      }
      case "nbd+vsock" -> throw new ConfigException("nbd: uri: vsock is not supported ('" + scheme + "://')");
      default -> throw new ConfigException("nbd: uri: not an NBD URI (nbd://, nbd+unix://, nbds:// or nbds+unix://): '"
          + text + "'");
    };
  }

  private static String queryParameter(URI uri, String name) {
    String query = uri.getRawQuery();
    if (query == null) {
      return null;
    }
    for (String pair : query.split("&")) {
      int equals = pair.indexOf('=');
      String key = equals < 0 ? pair : pair.substring(0, equals);
      if (key.equals(name)) {
        return URLDecoder.decode(equals < 0 ? "" : pair.substring(equals + 1), StandardCharsets.UTF_8);
      }
    }
    return null;
  }

  Upstream withExportName(String name) {
    return new Upstream(host, port, socket, name, tlsScheme);
  }

  /** The address to connect to, with the host name looked up now. */
  SocketAddress address() throws IOException {
    if (socket != null) {
      return UnixDomainSocketAddress.of(socket);
    }
    InetSocketAddress address = new InetSocketAddress(host, port);
    if (address.isUnresolved()) {
      throw new IOException("cannot resolve host '" + host + "'");
    }
    return address;
  }

  @Override
  public String toString() {
    return socket != null ? socket.toString() : (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
  }
}
