package io.jnbd.plugins.ssh;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Secrets;
import io.jnbd.api.Values;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Every parameter of the ssh plugin: its help, its default and its parsing, in one place. Names
 * and meanings follow nbdkit's ssh plugin so that its command lines (virt-v2v's among them) work
 * unchanged.
 */
final class SshSettings {
  /**
   * How long connecting and logging in may take without timeout=. nbdkit leaves this to libssh;
   * a bound keeps a client from waiting forever on a host that swallows packets.
   */
  static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);
  static final int DEFAULT_CREATE_MODE = 0600;

  static final List<Parameter> PARAMETERS = List.of(
      new Parameter("host", "HOST", "SSH server host name or address (required)."),
      new Parameter("path", "PATH", "Remote file to serve (required; the magic key). A relative path is relative to the"
          + " remote user's home directory."),
      new Parameter("port", "PORT", "SSH port (default: the ssh config's Port for the host, else 22)."),
      new Parameter("user", "USER", "Remote user name (default: the ssh config's User for the host, else the local user)."),
      new Parameter("password", "PASSWORD", "Password for password (and keyboard-interactive) authentication: literal,"
          + " '-' to read it from the terminal or stdin, '+FILE' to read it from FILE, '-FD' to read it from file descriptor FD.", true),
      new Parameter("identity", "FILE", "Private key file to try before the default ones (~/.ssh/id_ed25519, id_ecdsa,"
          + " id_rsa); may be repeated. Keys protected by a passphrase are not supported."),
      new Parameter("known-hosts", "FILE", "known_hosts file to check the server's host key against; may be repeated"
          + " (default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)."),
      new Parameter("verify-remote-host", "true|false", "Refuse a server whose host key is not in known_hosts or has"
          + " changed (default true). false allows a man-in-the-middle attack."),
      new Parameter("config", "FILE", "ssh_config file to read Host sections from (HostName, Port, User, IdentityFile);"
          + " 'config=' reads none (default ~/.ssh/config)."),
      new Parameter("compression", "true|false", "Ask for zlib compression; only worth it on slow links (default false)."),
      new Parameter("timeout", "SECS", "Time limit for connecting and logging in (default "
          + DEFAULT_TIMEOUT.toSeconds() + ")."),
      new Parameter("create", "true|false", "Create (or truncate) the remote file when the first client connects;"
          + " needs create-size (default false)."),
      new Parameter("create-size", "SIZE", "Size of the file made by create=true."),
      new Parameter("create-mode", "MODE", "Octal permissions of the file made by create=true (default 0600)."));

  String host;
  String path;
  int port;
  String user;
  String password;
  final List<Path> identities = new ArrayList<>();
  final List<Path> knownHosts = new ArrayList<>();
  boolean verifyRemoteHost = true;
  /** Null: the default ssh config; empty: none. */
  String config;
  boolean compression;
  Duration timeout = DEFAULT_TIMEOUT;
  boolean create;
  long createSize = -1;
  int createMode = DEFAULT_CREATE_MODE;

  /** Takes one key=value; false for a key that is not a parameter of this plugin. */
  boolean set(String plugin, String key, String value) {
    String what = plugin + ": " + key;
    switch (key) {
      case "host" -> host = nonEmpty(what, value);
      case "path" -> path = nonEmpty(what, value);
      case "port" -> port = Values.parseInt(what, value, 1, 65535);
      case "user" -> user = nonEmpty(what, value);
      case "password" -> password = Secrets.read(what, value);
      case "identity" -> identities.add(Path.of(nonEmpty(what, value)));
      case "known-hosts" -> knownHosts.add(Path.of(nonEmpty(what, value)));
      case "verify-remote-host" -> verifyRemoteHost = Values.parseBool(what, value);
      case "config" -> config = value;
      case "compression" -> compression = Values.parseBool(what, value);
      case "timeout" -> timeout = Duration.ofSeconds(Values.parseInt(what, value, 1, Integer.MAX_VALUE));
      case "create" -> create = Values.parseBool(what, value);
      case "create-size" -> createSize = Values.parseSize(what, value);
      case "create-mode" -> createMode = octalMode(what, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  /** Checks what single keys cannot. */
  void complete(String plugin) {
    if (host == null) {
      throw new ConfigException(plugin + ": host is required (e.g. host=server.example.com)");
    }
    if (path == null) {
      throw new ConfigException(plugin + ": path is required (e.g. path=/var/tmp/disk.img)");
    }
    if (create && createSize < 0) {
      throw new ConfigException(plugin + ": create=true needs create-size");
    }
    for (Path identity : identities) {
      if (!Files.isReadable(identity)) {
        throw new ConfigException(plugin + ": identity: cannot read " + identity);
      }
    }
    if (config != null && !config.isEmpty() && !Files.isReadable(Path.of(config))) {
      throw new ConfigException(plugin + ": config: cannot read " + config);
    }
  }

  private static String nonEmpty(String what, String value) {
    if (value.isEmpty()) {
      throw new ConfigException(what + ": must not be empty");
    }
    return value;
  }

  private static int octalMode(String what, String value) {
    try {
      int mode = Integer.parseInt(value.trim(), 8);
      if (mode >= 0 && mode <= 07777) {
        return mode;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new ConfigException(what + ": expected octal permissions such as 0644: '" + value + "'");
  }
}
