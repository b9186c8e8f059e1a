package io.jnbd.plugins.http;

import io.jnbd.api.ConfigException;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.SystemDefaultDnsResolver;

/**
 * ipresolve= and resolve=: which addresses a host name stands for. resolve entries (curl's
 * {@code --resolve HOST:PORT:ADDRESS}) answer for their host without DNS; ipresolve keeps only
 * IPv4 or IPv6 addresses, of DNS answers and entries alike.
 */
final class HostResolution implements DnsResolver {
  enum Family { ANY, V4, V6 }

  private final Family family;
  private final Map<String, InetAddress[]> fixed;

  private HostResolution(Family family, Map<String, InetAddress[]> fixed) {
    this.family = family;
    this.fixed = fixed;
  }

  static Family family(String what, String value) {
    return switch (value.toLowerCase(Locale.ROOT)) {
      case "any" -> Family.ANY;
      case "v4" -> Family.V4;
      case "v6" -> Family.V6;
      default -> throw new ConfigException(what + ": expected any, v4 or v6, not '" + value + "'");
    };
  }

  /**
   * The resolver for {@code url}: entries for its port are used, and entries for other ports are
   * refused, since the HTTP client resolves names without knowing the port they are for.
   */
  static HostResolution of(String plugin, Family family, List<String> entries, URI url) {
    int urlPort = url.getPort() >= 0 ? url.getPort() : "https".equalsIgnoreCase(url.getScheme()) ? 443 : 80;
    Map<String, InetAddress[]> fixed = new HashMap<>();
    for (String entry : entries) {
      String what = plugin + ": resolve=" + entry;
      String[] parts = entry.split(":", 3);
      if (parts.length != 3 || parts[0].isEmpty() || parts[2].isEmpty()) {
        throw new ConfigException(what + ": expected HOST:PORT:ADDRESS[,ADDRESS...]");
      }
      int port;
      try {
        port = Integer.parseInt(parts[1]);
      } catch (NumberFormatException e) {
        throw new ConfigException(what + ": '" + parts[1] + "' is not a port number");
      }
      if (port != urlPort) {
        throw new ConfigException(what + ": port " + port + " is not the URL's port " + urlPort);
      }
      List<InetAddress> addresses = new ArrayList<>();
      for (String address : parts[2].split(",")) {
        addresses.add(literal(what, address.strip()));
      }
      fixed.put(parts[0].toLowerCase(Locale.ROOT), addresses.toArray(InetAddress[]::new));
    }
    return new HostResolution(family, fixed);
  }

  /** An address as written (IPv6 may be in brackets); never a DNS lookup. */
  private static InetAddress literal(String what, String address) {
    String bare = address.startsWith("[") && address.endsWith("]") ? address.substring(1, address.length() - 1) : address;
    if (!bare.matches("[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")) {
      throw new ConfigException(what + ": '" + address + "' is not an IP address");
    }
    try {
      return InetAddress.getByName(bare);
    } catch (UnknownHostException e) {
      throw new ConfigException(what + ": '" + address + "' is not an IP address");
    }
  }

  @Override
  public InetAddress[] resolve(String host) throws UnknownHostException {
    InetAddress[] given = fixed.get(host.toLowerCase(Locale.ROOT));
    InetAddress[] all = given != null ? given : SystemDefaultDnsResolver.INSTANCE.resolve(host);
    InetAddress[] kept = Arrays.stream(all).filter(this::wanted).toArray(InetAddress[]::new);
    if (kept.length == 0) {
      throw new UnknownHostException(host + ": no " + (family == Family.V4 ? "IPv4" : "IPv6") + " address (ipresolve)");
    }
    return kept;
  }

  private boolean wanted(InetAddress address) {
    return switch (family) {
      case ANY -> true;
      case V4 -> address instanceof Inet4Address;
      case V6 -> address instanceof Inet6Address;
    };
  }

  @Override
  public String resolveCanonicalHostname(String host) throws UnknownHostException {
    return SystemDefaultDnsResolver.INSTANCE.resolveCanonicalHostname(host);
  }
}
