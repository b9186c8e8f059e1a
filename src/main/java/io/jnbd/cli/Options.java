package io.jnbd.cli;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Values;
import io.jnbd.server.DebugFlags;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsSettings;
import java.net.StandardProtocolFamily;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * The command line, parsed the nbdkit way: options may come before or after the plugin name
 * (as GNU getopt permutes them for nbdkit), {@code --} ends the options, and every word after
 * the plugin name is a {@code key=value} or a bare value for the plugin's magic key. The option
 * descriptions here are the {@code --help} text.
 */
@Command(
    name = "jnbd",
    customSynopsis = {
      "jnbd [OPTIONS] [--filter=FILTER]... PLUGIN [[KEY=]VALUE]...",
      "       jnbd [--filter=FILTER]... PLUGIN --help | --version | --dump-plugin",
      "       jnbd --help | --version | --dump-config | --long-options | --short-options"
    },
    sortOptions = false)
final class Options {
  /** The default NBD port, as in nbdkit. */
  static final int NBD_PORT = 10809;

  /** Internal: this process is the re-executed server of a background start (see Background). */
  static final String BACKGROUND_CHILD = "--jnbd-background-child";

  /**
   * The bytes that requests may hold at once, a JVM system property rather than an option:
   * nbdkit has no such option, and the value belongs with the JVM's own memory limits.
   */
  static final String MEMORY_BUDGET_PROPERTY = "jnbd.memoryBudget";

  @Option(names = {"-U", "--unix"}, paramLabel = "SOCKET",
      description = "Listen on a Unix socket; '-' creates a private one in a temporary directory.")
  Path unix;

  @Option(names = {"-p", "--port"}, paramLabel = "PORT",
      description = "Listen on this TCP port (default 10809 when -U is not given; 0 picks a free one).")
  Integer port;

  @Option(names = {"-i", "--ipaddr", "--ip-addr"}, paramLabel = "IPADDR",
      description = "Listen on this address only (default: all addresses).")
  String ipaddr;

  /** -4 or -6, whichever came last (as with nbdkit); null listens on both. */
  StandardProtocolFamily tcpFamily;

  @Option(names = {"-4", "--ipv4-only"}, description = "Listen on IPv4 addresses only.")
  void ipv4Only(boolean on) {
    tcpFamily = StandardProtocolFamily.INET;
  }

  @Option(names = {"-6", "--ipv6-only"}, description = "Listen on IPv6 addresses only.")
  void ipv6Only(boolean on) {
    tcpFamily = StandardProtocolFamily.INET6;
  }

  @Option(names = "--vsock",
      description = "Listen on AF_VSOCK (virtual machine sockets) on every context id, port -p (default 10809).")
  boolean vsock;

  @Option(names = {"-f", "--foreground", "--no-fork"}, description = "Stay in the foreground.")
  boolean foreground;

  @Option(names = {"-r", "--readonly", "--read-only"}, description = "Serve the export read-only.")
  boolean readOnly;

  @Option(names = {"-e", "--exportname", "--export-name", "--export"}, paramLabel = "EXPORTNAME",
      description = "The name of the default export.")
  String exportName;

  @Option(names = "--filter", paramLabel = "FILTER",
      description = "Add a filter; repeatable, the first named is the outermost.")
  List<String> filters = new ArrayList<>();

  @Option(names = "--run", paramLabel = "CMD",
      description = "Captive mode: serve while 'sh -c CMD' runs, then exit with its status.")
  String run;

  @Option(names = "--exit-with-parent",
      description = "Exit when the parent process exits (implies --foreground).")
  boolean exitWithParent;

  @Option(names = {"-P", "--pidfile", "--pid-file"}, paramLabel = "PIDFILE",
      description = "Write the server's process id here once it accepts connections.")
  Path pidfile;

  @Option(names = {"-t", "--threads"}, paramLabel = "THREADS",
      description = "Requests served at once on each connection (default "
          + ServerConfig.DEFAULT_MAX_REQUESTS + ").")
  String threads;

  @Option(names = "--handshake-limit", paramLabel = "SECONDS",
      description = "Drop a client that has not finished the handshake this long after connecting; 0 for no limit (default "
          + "10, as qemu-nbd).")
  String handshakeLimit;

  @Option(names = "--max-connections", paramLabel = "N",
      description = "Clients served at once; more are closed as they connect (default 1024).")
  String maxConnections;

  @Option(names = {"-s", "--single", "--stdin"},
      description = "Serve one client on stdin/stdout, then exit.")
  boolean single;

  @Option(names = {"-v", "--verbose"}, description = "Log debug messages and every request.")
  boolean verbose;

  @Option(names = {"-D", "--debug"}, paramLabel = "NAME.FLAG=N",
      description = "Debug flag: nbdkit.backend.datapath=0 stops -v tracing every request, jnbd.layers=1 makes -v "
          + "log every call between layers with its time, jnbd.checks=1 checks those calls against the capabilities "
          + "each layer advertised, nbdkit.tls.session=1 makes -v log each TLS session. Other flags of that form get a "
          + "warning and are ignored.")
  List<String> debugFlags = new ArrayList<>();
  private DebugFlags parsedDebugFlags;

  @Option(names = "--name", paramLabel = "NAME",
      description = "A name for this server, put in its messages (jnbd: NAME: ...), to tell several servers apart.")
  String name;

  @Option(names = "--selinux-label", paramLabel = "LABEL",
      description = "SELinux label of the Unix socket (applied when SELinux is enabled, else ignored).")
  String selinuxLabel;

  @Option(names = "--mask-handshake", paramLabel = "MASK",
      description = "Advertise only these handshake flags: 1 fixed newstyle, 2 no zeroes (default 3, both).")
  String maskHandshake;

  @Option(names = {"--no-sr", "--no-structured-replies"},
      description = "Refuse structured replies (and with them block status and meta contexts).")
  boolean noStructuredReplies;

  @Option(names = {"--no-mc", "--no-meta-contexts"},
      description = "Refuse meta contexts, so clients cannot ask for block status (extents).")
  boolean noMetaContexts;

  @Option(names = "--log", paramLabel = "stderr|syslog|null",
      description = "Where messages go: stderr (default in the foreground), syslog (facility daemon, to /dev/log or "
          + "$JNBD_SYSLOG_SOCKET; the default in the background) or null.")
  String log;

  @Option(names = {"-n", "--newstyle", "--new-style"},
      description = "Accepted for nbdkit compatibility: the protocol is always fixed newstyle.")
  boolean newstyle;

  // TLS (docs/tls.md)
  @Option(names = "--tls", paramLabel = "off|on|require",
      description = "STARTTLS: refused (off), allowed (on) or required before any other option (require). "
          + "Default: on when certificates or --tls-psk load, else off.")
  String tls;

  @Option(names = "--tls-certificates", paramLabel = "DIR",
      description = "Directory with server-cert.pem, server-key.pem, ca-cert.pem and optionally ca-crl.pem "
          + "(default: $HOME/.pki/nbdkit, then $HOME/.config/pki/nbdkit; /etc/pki/nbdkit for root).")
  Path tlsCertificates;

  @Option(names = "--tls-psk", paramLabel = "FILE",
      description = "Authenticate clients with pre-shared keys from FILE (psktool's username:hexkey lines) "
          + "instead of certificates.")
  Path tlsPsk;

  @Option(names = "--tls-verify-peer",
      description = "Clients must present a certificate signed by ca-cert.pem.")
  boolean tlsVerifyPeer;

  @Option(names = {"-V", "--version"},
      description = "Print jnbd's version and the nbdkit release it is compatible with, and exit; after a plugin name, "
          + "also each layer's, failing if the plugin or a filter does not exist.")
  boolean version;

  @Option(names = "--dump-config",
      description = "Print the configuration as key=value lines (version= is the nbdkit compatibility level) and exit.")
  boolean dumpConfig;

  @Option(names = "--dump-plugin", description = "Print the plugin's properties and exit.")
  boolean dumpPlugin;

  @Option(names = "--long-options", description = "Print every long option, one per line, and exit.")
  boolean longOptions;

  @Option(names = "--short-options", description = "Print every short option, one per line, and exit.")
  boolean shortOptions;

  @Option(names = {"-h", "--help"},
      description = "Print this help; after a plugin name, the plugin's and filters' parameters.")
  boolean help;

  @Option(names = BACKGROUND_CHILD, hidden = true)
  boolean backgroundChild;

  /** Sockets passed by systemd's socket activation (LISTEN_FDS), set from the environment after parsing. */
  int passedSockets;

  @Parameters(hidden = true) // shown by the synopsis
  List<String> words = new ArrayList<>();

  /** One plugin or filter parameter from the command line; key null means a bare value. */
  record Param(String key, String value) {}

  static CommandLine commandLine(Options options) {
    CommandLine line = new CommandLine(options);
    line.setExpandAtFiles(false); // "@..." is a plugin value like any other
    line.setOverwrittenOptionsAllowed(true); // as with getopt, the last one wins
    line.setUsageHelpWidth(100);
    return line;
  }

  /** Parses the arguments, turning picocli's complaints into one-line ConfigExceptions. */
  static Options parse(String[] args) {
    Options options = new Options();
    try {
      commandLine(options).parseArgs(args);
    } catch (CommandLine.ParameterException e) {
      throw new ConfigException(e.getMessage());
    }
    options.check();
    return options;
  }

  private void check() {
    if (port != null && (port < 0 || port > 65535)) {
      throw new ConfigException("-p: not a port number: " + port);
    }
    if (threads != null) {
      maxRequests(); // fails early on a bad number
    }
    memoryBudget(); // likewise
    handshakeLimitOrDefault();
    maxConnectionsOrDefault();
    if (log != null && !List.of("stderr", "syslog", "null").contains(log)) {
      throw new ConfigException("--log: must be stderr, syslog or null, not '" + log + "'");
    }
    if (vsock && (unix != null || ipaddr != null)) {
      throw new ConfigException("--vsock cannot be combined with -U or -i");
    }
    handshakeMask();
    if (tls != null) {
      TlsMode.parse(tls);
    }
    if (unix != null && (port != null || ipaddr != null)) {
      throw new ConfigException("-U cannot be combined with -p or -i");
    }
    if (single && (unix != null || port != null || ipaddr != null || run != null || vsock)) {
      throw new ConfigException("-s cannot be combined with -U, -p, -i, --vsock or --run");
    }
  }

  /** The plugin name, or null when none was given. */
  String plugin() {
    return words.isEmpty() ? null : words.get(0);
  }

  /** The words after the plugin name, split at the first '=' when what precedes it is a key. */
  List<Param> params() {
    List<Param> params = new ArrayList<>();
    for (String word : words.subList(Math.min(1, words.size()), words.size())) {
      int eq = word.indexOf('=');
      if (eq > 0 && isKey(word.substring(0, eq))) {
        params.add(new Param(word.substring(0, eq), word.substring(eq + 1)));
      } else {
        params.add(new Param(null, word));
      }
    }
    return params;
  }

  /** What nbdkit takes for a key: a letter, then letters, digits, '_', '-' or '.'. */
  static boolean isKey(String text) {
    if (text.isEmpty() || !Character.isLetter(text.charAt(0))) {
      return false;
    }
    return text.chars().allMatch(c -> c < 128 && (Character.isLetterOrDigit(c) || c == '_' || c == '-' || c == '.'));
  }

  /** --mask-handshake: the handshake flags the server may advertise; bits past the known ones are ignored. */
  int handshakeMask() {
    return maskHandshake == null ? ServerConfig.Handshake.ALL_FLAGS
        : Values.parseInt("--mask-handshake", maskHandshake, 0, Integer.MAX_VALUE) & ServerConfig.Handshake.ALL_FLAGS;
  }

  /** -t, where 0 (as in nbdkit) and absence mean the default. */
  int maxRequests() {
    int value = threads == null ? 0 : Values.parseInt("-t", threads, 0, 1 << 16);
    return value == 0 ? ServerConfig.DEFAULT_MAX_REQUESTS : value;
  }

  /** -Djnbd.memoryBudget=SIZE, or the default when it is not set. */
  long memoryBudget() {
    String value = System.getProperty(MEMORY_BUDGET_PROPERTY);
    if (value == null) {
      return ServerConfig.defaults().memoryBudget();
    }
    String what = "-D" + MEMORY_BUDGET_PROPERTY;
    long bytes = Values.parseSize(what, value);
    if (bytes < 1) {
      throw new ConfigException(what + ": must be at least 1 byte");
    }
    return bytes;
  }

  /** True when the server should detach into the background, as nbdkit does by default. */
  boolean detaches() {
    // A socket-activated server stays the process its starter watches, as nbdkit does.
    return !foreground && !exitWithParent && run == null && !single && !backgroundChild && passedSockets == 0;
  }

  /** True when the server listens on a private socket in a temporary directory. */
  boolean privateSocket() {
    return (unix != null && unix.toString().equals("-"))
        || (run != null && unix == null && port == null && ipaddr == null && !vsock);
  }

  ServerConfig serverConfig() {
    return ServerConfig.defaults()
        .withReadOnly(readOnly)
        .withExportName(exportName)
        .withMaxRequestsPerConnection(maxRequests())
        .withVerbose(verbose)
        .withMemoryBudget(memoryBudget())
        .withHandshakeLimit(handshakeLimitOrDefault())
        .withMaxConnections(maxConnectionsOrDefault())
        .withHandshake(new ServerConfig.Handshake(handshakeMask(), !noStructuredReplies, !noMetaContexts));
  }

  TlsSettings tlsSettings() {
    return new TlsSettings(tls == null ? null : TlsMode.parse(tls), tlsCertificates, tlsPsk, tlsVerifyPeer,
        parsedDebugFlags().tlsSession());
  }

  /** The -D flags, parsed once: parsing warns about each flag that nothing uses. */
  DebugFlags parsedDebugFlags() {
    if (parsedDebugFlags == null) {
      parsedDebugFlags = DebugFlags.parse(debugFlags);
    }
    return parsedDebugFlags;
  }

  private Duration handshakeLimitOrDefault() {
    return handshakeLimit == null ? ServerConfig.DEFAULT_HANDSHAKE_LIMIT
        : Duration.ofSeconds(Values.parseInt("--handshake-limit", handshakeLimit, 0, Integer.MAX_VALUE));
  }

  private int maxConnectionsOrDefault() {
    return maxConnections == null ? ServerConfig.DEFAULT_MAX_CONNECTIONS
        : Values.parseInt("--max-connections", maxConnections, 1, 1 << 20);
  }
}
