package io.jnbd.plugins.ssh;

import static io.jnbd.testing.TestData.randomBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.MinaSftpServer;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ssh plugin against an embedded MINA SSH server: password logins, refused host keys, missing
 * files, and a server that dies in the middle of a copy.
 */
class SshFaultsTest {
  private static final String USER = "tester";
  private static final String PASSWORD = "correct horse";

  @TempDir Path dir;
  private MinaSftpServer server;
  private Path knownHosts;
  private Path passwordFile;

  @BeforeEach
  void start() throws Exception {
    server = new MinaSftpServer(USER, PASSWORD);
    knownHosts = dir.resolve("known_hosts");
    Files.writeString(knownHosts, server.knownHostsLine() + "\n");
    passwordFile = dir.resolve("password");
    Files.writeString(passwordFile, PASSWORD + "\n");
  }

  @AfterEach
  void stop() {
    server.close();
  }

  private List<String> args(Path remote, String... more) {
    List<String> all = new ArrayList<>(List.of("host=127.0.0.1", "port=" + server.port(), "user=" + USER,
        "password=+" + passwordFile, "known-hosts=" + knownHosts, "path=" + remote));
    all.addAll(List.of(more));
    return all;
  }

  /** A configured plugin, opened directly (no NBD server), for the errors of open. */
  private static Plugin ready(List<String> keyValues) {
    Plugin plugin = SshOpenSshTest.configured(keyValues);
    plugin.configComplete();
    return plugin;
  }

  private Path remoteImage(int size, long seed) throws Exception {
    Path remote = dir.resolve("remote-" + seed + ".img");
    Files.write(remote, randomBytes(size, seed));
    return remote;
  }

  @Test
  void passwordFromAFileLogsInAndNbdcopyCopiesByteForByte() throws Exception {
    Tools.require("nbdcopy");
    Path remote = remoteImage(3 * 1024 * 1024 + 7, 10);
    Path copy = dir.resolve("copy.img");
    try (TestServer nbd = new TestServer(SshOpenSshTest.configured(args(remote)))) {
      Tools.run("nbdcopy", nbd.uri(), copy.toString()).assertSuccess();
    }
    assertThat(Files.readAllBytes(copy)).isEqualTo(Files.readAllBytes(remote));
  }

  @Test
  void aWrongPasswordIsALoginError() throws Exception {
    Path remote = remoteImage(4096, 11);
    Files.writeString(passwordFile, "wrong\n");
    Plugin plugin = ready(args(remote));
    try {
      assertThatThrownBy(() -> plugin.open(false, "")).isInstanceOf(NbdException.class)
          .hasMessageContaining("cannot log in as " + USER + " on 127.0.0.1 port " + server.port());
    } finally {
      plugin.unload();
    }
  }

  @Test
  void anUnknownHostKeyIsRefusedUnlessVerificationIsTurnedOff() throws Exception {
    Path remote = remoteImage(4096, 12);
    Files.writeString(knownHosts, "");
    Plugin verifying = ready(args(remote));
    try {
      assertThatThrownBy(() -> verifying.open(false, "")).isInstanceOf(NbdException.class)
          .hasMessageContaining("[127.0.0.1]:" + server.port())
          .hasMessageContaining("is not in [" + knownHosts + "]")
          .hasMessageContaining("verify-remote-host=false");
    } finally {
      verifying.unload();
    }
    Plugin trusting = ready(args(remote, "verify-remote-host=false"));
    try (var export = trusting.open(false, "")) {
      assertThat(export.size()).isEqualTo(4096);
    } finally {
      trusting.unload();
    }
  }

  @Test
  void aChangedHostKeyIsRefusedAsAPossibleAttack() throws Exception {
    Path remote = remoteImage(4096, 13);
    server.changeHostKey();
    Plugin plugin = ready(args(remote));
    try {
      assertThatThrownBy(() -> plugin.open(false, "")).isInstanceOf(NbdException.class)
          .hasMessageContaining("has CHANGED").hasMessageContaining("man-in-the-middle");
    } finally {
      plugin.unload();
    }
  }

  @Test
  void aMissingFileIsNamedAsSuch() throws Exception {
    Plugin plugin = ready(args(dir.resolve("no-such.img")));
    try {
      assertThatThrownBy(() -> plugin.open(false, "")).isInstanceOf(NbdException.class)
          .hasMessageContaining("no-such.img: no such file (check path=)");
    } finally {
      plugin.unload();
    }
  }

  @Test
  void aFileTheServerWillNotOpenForWritingIsServedReadOnly() throws Exception {
    Tools.require("nbdsh");
    Path remote = remoteImage(64 * 1024, 15);
    server.refuseWrites();
    try (TestServer nbd = new TestServer(SshOpenSshTest.configured(args(remote)))) {
      String out = Tools.nbdsh(nbd.uri(), String.join("\n",
          "print('read-only', h.is_read_only(), 'flush', h.can_flush())",
          "print('first', bytes(h.pread(4, 0)).hex())")).assertSuccess().stdout();
      byte[] data = Files.readAllBytes(remote);
      assertThat(out).contains("read-only True flush False",
          "first " + java.util.HexFormat.of().formatHex(data, 0, 4));
    }
  }

  @Test
  void createMakesTheFileWithItsSizeAndMode() throws Exception {
    Tools.require("nbdinfo");
    Path remote = dir.resolve("created.img");
    try (TestServer nbd = new TestServer(SshOpenSshTest.configured(
        args(remote, "create=true", "create-size=1M", "create-mode=0640")))) {
      String info = Tools.run("nbdinfo", "--json", nbd.uri()).assertSuccess().stdout();
      assertThat(info).contains("\"export-size\": 1048576");
    }
    assertThat(Files.size(remote)).isEqualTo(1 << 20);
    assertThat(java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(remote)))
        .isEqualTo("rw-r-----");
  }

  /**
   * The server goes away at half the copy and is back a second later: under the retry filter the
   * copy completes identical; without it, the copy fails rather than hangs.
   */
  @Test
  void aServerDyingMidCopyIsSurvivedUnderRetryAndFailsWithout() throws Exception {
    Tools.require("nbdcopy");
    int size = 16 * 1024 * 1024;
    Path remote = remoteImage(size, 14);
    AtomicBoolean outage = new AtomicBoolean();
    server.onRead(total -> {
      if (total > size / 2 && outage.compareAndSet(false, true)) {
        Thread.ofVirtual().start(() -> {
          server.stop();
          sleep(1000);
          server.restart();
        });
      }
    });
    Path copy = dir.resolve("copy.img");
    var stack = Stacks.configured(List.of(Catalog.filter("retry")), Catalog.plugin("ssh"),
        args(remote, "retry-delay=500ms").toArray(String[]::new));
    try (TestServer nbd = new TestServer(stack, ServerConfig.defaults())) {
      Tools.run(List.of("nbdcopy", "--requests=64", "--flush", nbd.uri(), copy.toString()), Map.of(), 120)
          .assertSuccess();
    }
    assertThat(outage).isTrue();
    assertThat(Files.readAllBytes(copy)).isEqualTo(Files.readAllBytes(remote));

    AtomicBoolean death = new AtomicBoolean();
    server.onRead(total -> {
      if (total > size * 3L / 2 && death.compareAndSet(false, true)) {
        Thread.ofVirtual().start(server::stop);
      }
    });
    try (TestServer nbd = new TestServer(SshOpenSshTest.configured(args(remote)))) {
      Tools.Result result = Tools.run(List.of("nbdcopy", nbd.uri(), dir.resolve("copy2.img").toString()), Map.of(), 120);
      assertThat(result.exitCode()).isNotZero();
      assertThat(result.stderr()).contains("Input/output error");
    }
    assertThat(death).isTrue();
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
