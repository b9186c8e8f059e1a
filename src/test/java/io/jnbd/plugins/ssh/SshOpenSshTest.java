package io.jnbd.plugins.ssh;

import static io.jnbd.testing.TestData.randomBytes;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Plugin;
import io.jnbd.testing.Layers;
import io.jnbd.testing.OpenSshServer;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ssh plugin against Debian's OpenSSH server, read and written by real NBD clients. */
class SshOpenSshTest {
  private static OpenSshServer sshd;
  @TempDir Path dir;

  @BeforeAll
  static void startSshd() {
    sshd = new OpenSshServer("ed25519");
  }

  @AfterAll
  static void stopSshd() {
    sshd.close();
  }

  /**
   * The plugin as the command line would make it: found by name, configured key by key (the
   * server completes the configuration).
   */
  static Plugin configured(List<String> keyValues) {
    return Layers.plugin("ssh", keyValues.toArray(String[]::new));
  }

  @Test
  void nbdinfoSeesTheSizeAndNbdcopyCopiesByteForByte() throws Exception {
    Tools.require("nbdinfo", "nbdcopy");
    // Not a multiple of any chunk size, so the last SFTP read is a short one.
    byte[] data = randomBytes(5 * 1024 * 1024 + 12345, 1);
    Path remote = sshd.directory().resolve("disk.img");
    Files.write(remote, data);
    try (TestServer server = new TestServer(configured(sshd.pluginArgs(remote)))) {
      String info = Tools.run("nbdinfo", "--json", server.uri()).assertSuccess().stdout();
      assertThat(info).contains("\"export-size\": " + data.length).contains("\"is_read_only\": false");
      Path copy = dir.resolve("copy.img");
      Tools.run("nbdcopy", server.uri(), copy.toString()).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(data);
    }
  }

  @Test
  void writesLandInTheRemoteFileAndFlushIsAdvertised() throws Exception {
    Tools.require("nbdcopy", "nbdsh");
    byte[] original = randomBytes(3 * 1024 * 1024, 2);
    byte[] replacement = randomBytes(3 * 1024 * 1024, 3);
    Path remote = sshd.directory().resolve("written.img");
    Files.write(remote, original);
    Path source = dir.resolve("source.img");
    Files.write(source, replacement);
    try (TestServer server = new TestServer(configured(sshd.pluginArgs(remote)))) {
      Tools.run(List.of("nbdcopy", "--flush", source.toString(), server.uri()), Map.of(), 120).assertSuccess();
      assertThat(Files.readAllBytes(remote)).isEqualTo(replacement);
      String out = Tools.nbdsh(server.uri(), String.join("\n",
          "print('flush', h.can_flush(), 'fua', h.can_fua())",
          "h.pwrite(b'hello', 1000001, nbd.CMD_FLAG_FUA)",
          "h.flush()",
          "print('read back', bytes(h.pread(5, 1000001)))")).assertSuccess().stdout();
      assertThat(out).contains("flush True fua True", "read back b'hello'");
      System.arraycopy("hello".getBytes(), 0, replacement, 1000001, 5);
      assertThat(Files.readAllBytes(remote)).isEqualTo(replacement);
    }
  }

  @Test
  void qemuImgComparesEqualThroughTheExport() throws Exception {
    Tools.require("qemu-img");
    byte[] data = randomBytes(4 * 1024 * 1024, 4);
    Path remote = sshd.directory().resolve("compare.img");
    Files.write(remote, data);
    Path local = dir.resolve("local.img");
    Files.write(local, data);
    try (TestServer server = new TestServer(configured(sshd.pluginArgs(remote)))) {
      Tools.run(List.of("qemu-img", "compare", "-f", "raw", "-F", "raw", local.toString(), server.uri()), Map.of(), 120)
          .assertSuccess();
    }
  }

  /** host= names a Host section of config=, which supplies the address, port, user and key. */
  @Test
  void aHostAliasFromTheSshConfigReachesTheServerWithCompression() throws Exception {
    Tools.require("nbdcopy");
    byte[] data = randomBytes(2 * 1024 * 1024, 5);
    Path remote = sshd.directory().resolve("aliased.img");
    Files.write(remote, data);
    Path config = dir.resolve("ssh_config");
    Files.writeString(config, String.join("\n",
        "Host disk-server",
        "  HostName 127.0.0.1",
        "  Port " + sshd.port(),
        "  User " + sshd.user(),
        "  IdentityFile " + sshd.clientKey(),
        ""));
    Path copy = dir.resolve("copy.img");
    try (TestServer server = new TestServer(configured(List.of("host=disk-server", "config=" + config,
        "known-hosts=" + sshd.knownHosts(), "compression=true", "path=" + remote)))) {
      Tools.run("nbdcopy", server.uri(), copy.toString()).assertSuccess();
    }
    assertThat(Files.readAllBytes(copy)).isEqualTo(data);
  }
}
