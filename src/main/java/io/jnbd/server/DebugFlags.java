package io.jnbd.server;

import java.util.List;

/**
 * The {@code -D NAME=VALUE} flags the server itself understands. Others are accepted and ignored,
 * as nbdkit ignores flags of plugins that are not loaded.
 *
 * @param datapath {@code nbdkit.backend.datapath}: with {@code -v}, trace every request (default
 *     on; virt-v2v turns it off)
 * @param layers {@code jnbd.layers}: with {@code -v}, log every call from one layer to the next,
 *     with its time
 * @param checks {@code jnbd.checks}: also check what a layer asks of the layer below against the
 *     capabilities that layer advertised (the cheap checks of ranges, flags and short reads are
 *     always on); the system property {@code jnbd.checks=true} turns it on too, as the tests do
 * @param tlsSession {@code nbdkit.tls.session}: with {@code -v}, log each TLS session's protocol,
 *     cipher suite and client identity
 */
public record DebugFlags(boolean datapath, boolean layers, boolean checks, boolean tlsSession) {
  public DebugFlags(boolean datapath, boolean layers, boolean checks) {
    this(datapath, layers, checks, false);
  }

  public static DebugFlags defaults() {
    return new DebugFlags(true, false, Boolean.getBoolean("jnbd.checks"));
  }

  /** The flags in command-line order; a later setting of a flag wins. */
  public static DebugFlags parse(List<String> flags) {
    DebugFlags parsed = defaults();
    for (String flag : flags) {
      int equals = flag.indexOf('=');
      String name = equals < 0 ? flag : flag.substring(0, equals);
      boolean on = equals < 0 || !isZero(flag.substring(equals + 1));
      parsed = switch (name) {
        case "nbdkit.backend.datapath" -> new DebugFlags(on, parsed.layers, parsed.checks, parsed.tlsSession);
        case "jnbd.layers" -> new DebugFlags(parsed.datapath, on, parsed.checks, parsed.tlsSession);
        case "jnbd.checks" -> new DebugFlags(parsed.datapath, parsed.layers, on || Boolean.getBoolean("jnbd.checks"), parsed.tlsSession);
        case "nbdkit.tls.session" -> new DebugFlags(parsed.datapath, parsed.layers, parsed.checks, on);
        default -> parsed;
      };
    }
    return parsed;
  }

  private static boolean isZero(String value) {
    try {
      return Long.parseLong(value.trim()) == 0;
    } catch (NumberFormatException e) {
      return false;
    }
  }
}
