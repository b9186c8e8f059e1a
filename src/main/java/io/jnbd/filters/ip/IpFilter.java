package io.jnbd.filters.ip;

import io.jnbd.api.Client;
import io.jnbd.api.Errno;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import java.io.IOException;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * The ip filter (nbdkit's): admits or refuses each client by its address, before the handshake.
 * A client matching any allow rule is admitted; else one matching any deny rule is refused; else
 * it is admitted. Without rules the filter does nothing.
 */
public final class IpFilter implements Filter {
  private final List<Rule> allow = new ArrayList<>();
  private final List<Rule> deny = new ArrayList<>();
  private Rules rules = new Rules(allow, deny);

  /** The allow and deny rules, fixed once configured. */
  record Rules(List<Rule> allow, List<Rule> deny) {
    Rules {
      allow = List.copyOf(allow);
      deny = List.copyOf(deny);
    }

    /** Whether the rules admit a client at this address; one of unknown address only if there are no rules. */
    boolean admits(SocketAddress address) {
      if (allow.isEmpty() && deny.isEmpty()) {
        return true;
      }
      if (address == null) {
        return false;
      }
      return matchesAny(allow, address) || !matchesAny(deny, address);
    }

    private static boolean matchesAny(List<Rule> rules, SocketAddress address) {
      for (Rule rule : rules) {
        if (rule.matches(address)) {
          return true;
        }
      }
      return false;
    }
  }

  @Override
  public String name() {
    return "ip";
  }

  @Override
  public String description() {
    return "allow or deny clients by their address";
  }

  @Override
  public List<Parameter> parameters() {
    String entries = "Comma-separated: all|any, anyipv4, anyipv6, anyunix, anyvsock (also all...), A.B.C.D[/NN], an IPv6 address[/NN].";
    return List.of(
        new Parameter("allow", "ADDR[,...]", "Clients admitted whatever deny says. " + entries),
        new Parameter("deny", "ADDR[,...]", "Clients refused unless allow admits them (default: none). " + entries));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "allow" -> allow.addAll(Rule.parseList(key, value));
      case "deny" -> deny.addAll(Rule.parseList(key, value));
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    rules = new Rules(allow, deny);
  }

  @Override
  public void preconnect(Layer next, Client client, boolean readOnly) throws IOException {
    if (!admits(client.address())) {
      throw new NbdException(Errno.EPERM, "ip: client " + (client.address() == null ? "on stdin/stdout" : client.address())
          + " is refused by the allow and deny rules");
    }
    next.preconnect(client, readOnly);
  }

  /** Whether the configured rules admit a client at this address. */
  boolean admits(SocketAddress address) {
    return rules.admits(address);
  }
}
