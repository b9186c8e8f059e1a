package io.jnbd.filters.ip;

import io.jnbd.api.ConfigException;
import io.jnbd.api.VsockAddress;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/** One entry of an allow= or deny= list: which client addresses it matches. */
sealed interface Rule {
  boolean matches(SocketAddress client);

  /** all, any. */
  record Anything() implements Rule {
    @Override
    public boolean matches(SocketAddress client) {
      return true;
    }
  }

  /** allipv4/anyipv4, allipv6/anyipv6, allunix/anyunix. */
  record Family(Class<?> type) implements Rule {
    @Override
    public boolean matches(SocketAddress client) {
      return client instanceof InetSocketAddress inet ? type.isInstance(inet.getAddress()) : type.isInstance(client);
    }
  }

  /** allvsock/anyvsock: any client on AF_VSOCK (--vsock). */
  record Vsock() implements Rule {
    @Override
    public boolean matches(SocketAddress client) {
      return client instanceof VsockAddress;
    }
  }

  /** vsock-cid:CID or vsock-port:PORT: an AF_VSOCK client from that context id, or that port. */
  record VsockPeer(boolean byPort, long value) implements Rule {
    @Override
    public boolean matches(SocketAddress client) {
      return client instanceof VsockAddress vsock && (byPort ? vsock.port() : vsock.cid()) == value;
    }
  }

  /** A.B.C.D[/NN] or an IPv6 address [/NN]: the addresses whose first {@code bits} bits are the network's. */
  record Network(byte[] network, int bits) implements Rule {
    @Override
    public boolean matches(SocketAddress client) {
      if (!(client instanceof InetSocketAddress inet) || inet.getAddress() == null) {
        return false;
      }
      byte[] address = inet.getAddress().getAddress();
      if (address.length != network.length) {
        return false;
      }
      for (int bit = 0; bit < bits; bit++) {
        int mask = 0x80 >>> (bit % 8);
        if ((address[bit / 8] & mask) != (network[bit / 8] & mask)) {
          return false;
        }
      }
      return true;
    }
  }

  Pattern IPV4 = Pattern.compile("(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})");
  /** Only what an IPv6 literal is made of, so that parsing it never becomes a name lookup. */
  Pattern IPV6 = Pattern.compile("[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*");

  /**
   * Parses a comma-separated list as nbdkit does (empty entries are skipped).
   *
   * @param key allow or deny, for messages
   */
  static List<Rule> parseList(String key, String value) {
    List<Rule> rules = new ArrayList<>();
    for (String entry : value.split(",")) {
      if (!entry.isBlank()) {
        rules.add(parse(key, entry.trim()));
      }
    }
    return rules;
  }

  private static Rule parse(String key, String entry) {
    switch (entry.toLowerCase(Locale.ROOT)) {
      case "all", "any" -> {
        return new Anything();
      }
      case "allipv4", "anyipv4" -> {
        return new Family(Inet4Address.class);
      }
      case "allipv6", "anyipv6" -> {
        return new Family(Inet6Address.class);
      }
      case "allunix", "anyunix" -> {
        return new Family(UnixDomainSocketAddress.class);
      }
      case "allvsock", "anyvsock" -> {
        return new Vsock();
      }
      default -> {
        // Not a keyword.
      }
    }
    for (String vsock : List.of("vsock-cid:", "vsock-port:")) {
      if (entry.startsWith(vsock)) {
        try {
          return new VsockPeer(vsock.equals("vsock-port:"),
              Integer.toUnsignedLong(Integer.parseUnsignedInt(entry.substring(vsock.length()))));
        } catch (NumberFormatException e) {
          throw new ConfigException("ip: " + key + "=" + entry + ": not a number after " + vsock);
        }
      }
    }
    for (String credential : List.of("pid:", "uid:", "gid:")) {
      if (entry.startsWith(credential)) {
        throw new ConfigException("ip: " + key + "=" + entry + ": " + credential
            + " rules are not supported by jnbd (Java does not reveal a Unix client's process, user and group IDs)");
      }
    }
    int slash = entry.indexOf('/');
    String literal = slash < 0 ? entry : entry.substring(0, slash);
    byte[] address = literal(key, entry, literal);
    int bits = address.length * 8;
    if (slash >= 0) {
      try {
        bits = Integer.parseInt(entry.substring(slash + 1));
      } catch (NumberFormatException e) {
        bits = -1;
      }
      if (bits < 0 || bits > address.length * 8) {
        throw new ConfigException("ip: " + key + "=" + entry + ": the prefix length must be 0 to " + address.length * 8);
      }
    }
    return new Network(address, bits);
  }

  private static byte[] literal(String key, String entry, String literal) {
    var ipv4 = IPV4.matcher(literal);
    if (ipv4.matches()) {
      byte[] address = new byte[4];
      for (int i = 0; i < 4; i++) {
        int part = Integer.parseInt(ipv4.group(i + 1));
        if (part > 255) {
          throw new ConfigException("ip: " + key + "=" + entry + ": not an IPv4 address: " + literal);
        }
        address[i] = (byte) part;
      }
      return address;
    }
    if (IPV6.matcher(literal).matches()) {
      try {
        InetAddress parsed = InetAddress.getByName(literal);
        if (parsed instanceof Inet6Address) {
          return parsed.getAddress();
        }
      } catch (UnknownHostException e) {
        // Reported below.
      }
    }
    throw new ConfigException("ip: " + key + "=" + entry + ": not a keyword, an IPv4 or IPv6 address or network");
  }
}
