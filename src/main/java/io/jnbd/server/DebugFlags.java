package io.jnbd.server;

import io.jnbd.api.ConfigException;
import java.util.List;
import java.util.regex.Pattern;
import org.slf4j.LoggerFactory;

/**
 * The {@code -D NAME.FLAG=N} flags the server itself understands. A flag not in that form is an
 * error, as in nbdkit; a well-formed flag that nothing here uses (a flag of one of nbdkit's
 * plugins) gets nbdkit's warning and is otherwise ignored.
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
  /** NAME.FLAG, where NAME may itself have dots (nbdkit.backend.datapath). */
  private static final Pattern FORM = Pattern.compile("[A-Za-z_][\\w-]*(\\.[A-Za-z_][\\w-]*)+");

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
      String name = equals < 0 ? "" : flag.substring(0, equals);
      if (!FORM.matcher(name).matches()) {
        throw new ConfigException("-D " + flag + ": a debug flag must have the form NAME.FLAG=N");
      }
      boolean on = value(flag, flag.substring(equals + 1)) != 0;
      parsed = switch (name) {
        case "nbdkit.backend.datapath" -> new DebugFlags(on, parsed.layers, parsed.checks, parsed.tlsSession);
        case "jnbd.layers" -> new DebugFlags(parsed.datapath, on, parsed.checks, parsed.tlsSession);
        case "jnbd.checks" -> new DebugFlags(parsed.datapath, parsed.layers, on || Boolean.getBoolean("jnbd.checks"), parsed.tlsSession);
        case "nbdkit.tls.session" -> new DebugFlags(parsed.datapath, parsed.layers, parsed.checks, on);
        default -> {
          LoggerFactory.getLogger(DebugFlags.class).warn("debug flag -D {} was not used", name);
          yield parsed;
        }
      };
    }
    return parsed;
  }

  /** N as nbdkit reads numbers: decimal, 0x hexadecimal or 0 octal. */
  private static long value(String flag, String text) {
    try {
      return Long.decode(text.strip());
    } catch (NumberFormatException e) {
      throw new ConfigException("-D " + flag + ": '" + text + "' is not a number");
    }
  }
}
