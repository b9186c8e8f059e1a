package io.jnbd.plugins.ssh;

import io.jnbd.api.ConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The ssh plugin's configuration, checked once all keys are in. The keys, their defaults and
 * their help are in {@link SshPlugin}.
 *
 * @param host the SSH server
 * @param path the remote file
 * @param port the SSH port; 0 for the ssh config's, else 22
 * @param user the remote user; null for the ssh config's, else the local user
 * @param password the password, already read from where password= said; null for none
 * @param identities private key files tried before the default ones
 * @param knownHosts known_hosts files; empty for the default ones
 * @param verifyRemoteHost refuse a server whose host key is unknown or changed
 * @param config the ssh_config file; null for the default, empty for none
 * @param compression ask for zlib compression
 * @param timeout the time limit for connecting and logging in
 * @param create create (or truncate) the file when the first client connects
 * @param createSize the size of the file made by create; negative when not given
 * @param createMode the permissions of the file made by create
 */
record SshSettings(
    String host,
    String path,
    int port,
    String user,
    String password,
    List<Path> identities,
    List<Path> knownHosts,
    boolean verifyRemoteHost,
    String config,
    boolean compression,
    Duration timeout,
    boolean create,
    long createSize,
    int createMode) {

  SshSettings {
    identities = List.copyOf(identities);
    knownHosts = List.copyOf(knownHosts);
    if (host == null) {
      throw new ConfigException("ssh: host is required (e.g. host=server.example.com)");
    }
    if (path == null) {
      throw new ConfigException("ssh: path is required (e.g. path=/var/tmp/disk.img)");
    }
    if (create && createSize < 0) {
      throw new ConfigException("ssh: create=true needs create-size");
    }
    for (Path identity : identities) {
      if (!Files.isReadable(identity)) {
        throw new ConfigException("ssh: identity: cannot read " + identity);
      }
    }
    if (config != null && !config.isEmpty() && !Files.isReadable(Path.of(config))) {
      throw new ConfigException("ssh: config: cannot read " + config);
    }
  }

  /** Without the password, so that a log line that prints the settings does not leak it. */
  @Override
  public String toString() {
    return "SshSettings[" + (user == null ? "" : user + "@") + host + (port > 0 ? ":" + port : "") + ":" + path
        + (password == null ? "" : ", password given") + "]";
  }
}
