package io.jnbd.plugins.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.server.tls.TlsSettings;
import io.jnbd.testing.Layers;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestPki;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The nbd plugin connecting to an upstream that requires TLS (jnbd's own server, and nbdkit's
 * with GnuTLS), with certificates and with pre-shared keys: nbdcopy reads the proxy's export,
 * and the copy is compared with the upstream's disk byte for byte.
 */
class NbdPluginTlsTest {
  private static final byte[] ALICE_KEY = "0123456789abcdef0123456789abcdef".getBytes(java.nio.charset.StandardCharsets.US_ASCII);

  @TempDir Path dir;

  private Path disk() throws Exception {
    byte[] image = new byte[4 << 20];
    new Random(21).nextBytes(image);
    return Files.write(dir.resolve("disk.img"), image);
  }

  private static TestServer upstream(Path disk, TlsSettings settings) {
    Stack stack = Stacks.configured(List.of(), Layers.plugin("file", "file=" + disk));
    return new TestServer(stack, ServerConfig.defaults(), TlsPolicy.load(settings)).withTcp();
  }

  /** Serves the nbd plugin with these keys and copies its export with nbdcopy. */
  private byte[] copyThroughProxy(String... keys) throws Exception {
    Tools.require("nbdcopy");
    Stack proxyStack = Stacks.configured(List.of(), new NbdPlugin(), keys);
    try (TestServer proxy = new TestServer(proxyStack, ServerConfig.defaults())) {
      Path copy = dir.resolve("copy.raw");
      Files.deleteIfExists(copy);
      Tools.run(List.of("nbdcopy", "--requests=16", proxy.uri(), copy.toString()), Map.of(), 120).assertSuccess();
      return Files.readAllBytes(copy);
    }
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"tcp", "unix", "uri"})
  void x509ToJnbd(String addressing) throws Exception {
    Path disk = disk();
    Path pki = TestPki.certificates(dir.resolve("pki"), "test CA");
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, pki, null, false, false))) {
      List<String> keys = new ArrayList<>(switch (addressing) {
        // The certificate names localhost and 127.0.0.1: the host name is checked.
        case "tcp" -> List.of("hostname=127.0.0.1", "port=" + upstream.port(), "tls=require");
        case "unix" -> List.of("socket=" + upstream.socket(), "tls=require");
        default -> List.of("uri=nbds://localhost:" + upstream.port() + "/");
      });
      keys.add("tls-certificates=" + pki);
      assertThat(copyThroughProxy(keys.toArray(String[]::new))).isEqualTo(Files.readAllBytes(disk));
    }
  }

  @Test
  void x509PresentsTheClientCertificateToAnUpstreamThatVerifiesPeers() throws Exception {
    Path disk = disk();
    Path pki = TestPki.certificates(dir.resolve("pki"), "test CA");
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, pki, null, true, false))) {
      assertThat(copyThroughProxy("socket=" + upstream.socket(), "tls=require", "tls-certificates=" + pki))
          .isEqualTo(Files.readAllBytes(disk));
    }
  }

  @Test
  void x509RefusesAServerItCannotVerifyOrOfAnotherName() throws Exception {
    Path disk = disk();
    Path pki = TestPki.certificates(dir.resolve("pki"), "test CA");
    Path otherCa = TestPki.certificates(dir.resolve("other"), "another CA");
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, pki, null, false, false))) {
      String[] keys = {"hostname=127.0.0.1", "port=" + upstream.port(), "tls=require", "shared=true",
          "tls-certificates=" + otherCa};
      assertThatThrownBy(() -> Stacks.configured(List.of(), new NbdPlugin(), keys))
          .isInstanceOf(ConfigException.class)
          .hasMessageContaining("upstream 127.0.0.1:" + upstream.port() + " TLS handshake failed (x509)");
      assertThat(copyThroughProxy(append(keys, "tls-verify=false"))).isEqualTo(Files.readAllBytes(disk));
    }
    // Signed by the trusted CA, but made out to another name than the address connected to.
    Path elsewhere = TestPki.certificates(dir.resolve("elsewhere"), "test CA", "elsewhere.example");
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, elsewhere, null, false, false))) {
      String[] keys = {"hostname=127.0.0.1", "port=" + upstream.port(), "tls=require", "shared=true",
          "tls-certificates=" + elsewhere};
      assertThatThrownBy(() -> Stacks.configured(List.of(), new NbdPlugin(), keys))
          .hasMessageContaining("TLS handshake failed (x509)").hasMessageContaining("127.0.0.1");
      assertThat(copyThroughProxy(append(keys, "tls-verify=false"))).isEqualTo(Files.readAllBytes(disk));
      // Over a Unix socket there is no name to check: the CA's signature is enough.
      assertThat(copyThroughProxy("socket=" + upstream.socket(), "tls=require", "tls-certificates=" + elsewhere))
          .isEqualTo(Files.readAllBytes(disk));
    }
  }

  @Test
  void pskToJnbd() throws Exception {
    Path disk = disk();
    Path keys = TestPki.pskFile(dir.resolve("server.psk"), "alice", ALICE_KEY);
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, null, keys, false, false))) {
      assertThat(copyThroughProxy("hostname=127.0.0.1", "port=" + upstream.port(), "tls=require",
          "tls-psk=" + keys, "tls-username=alice")).isEqualTo(Files.readAllBytes(disk));
    }
  }

  @Test
  void aWrongPskIsAClearError() throws Exception {
    Path disk = disk();
    Path serverKeys = TestPki.pskFile(dir.resolve("server.psk"), "alice", ALICE_KEY);
    byte[] wrong = ALICE_KEY.clone();
    wrong[0] ^= 1;
    Path clientKeys = TestPki.pskFile(dir.resolve("client.psk"), "alice", wrong);
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, null, serverKeys, false, false))) {
      assertThatThrownBy(() -> Stacks.configured(List.of(), new NbdPlugin(), "socket=" + upstream.socket(),
              "tls-psk=" + clientKeys, "tls-username=alice", "tls=require", "shared=true"))
          .isInstanceOf(ConfigException.class)
          .hasMessageContaining("TLS handshake failed (PSK as alice): the server refused the key of 'alice'");
      assertThatThrownBy(() -> Stacks.configured(List.of(), new NbdPlugin(), "socket=" + upstream.socket(),
              "tls-psk=" + clientKeys, "tls-username=bob"))
          .hasMessageContaining("has no key for the username 'bob'");
    }
  }

  @Test
  void withoutTlsTheRefusalSaysHowToAskForIt() throws Exception {
    Path disk = disk();
    Path keys = TestPki.pskFile(dir.resolve("server.psk"), "alice", ALICE_KEY);
    try (TestServer upstream = upstream(disk, new TlsSettings(TlsMode.REQUIRE, null, keys, false, false))) {
      assertThatThrownBy(() -> Stacks.configured(List.of(), new NbdPlugin(), "socket=" + upstream.socket(), "shared=true"))
          .hasMessageContaining("requires TLS (set tls=require");
    }
  }

  @Test
  void tlsOnFallsBackToPlainTextOnlyWhenTheServerHasNoTls() throws Exception {
    Path disk = disk();
    Path keys = TestPki.pskFile(dir.resolve("client.psk"), "alice", ALICE_KEY);
    try (TestServer plain = upstream(disk, new TlsSettings(TlsMode.OFF, null, null, false, false))) {
      assertThat(copyThroughProxy("socket=" + plain.socket(), "tls=on", "tls-psk=" + keys, "tls-username=alice"))
          .isEqualTo(Files.readAllBytes(disk));
      assertThatThrownBy(() -> Stacks.configured(List.of(), new NbdPlugin(), "socket=" + plain.socket(),
              "tls=require", "tls-psk=" + keys, "tls-username=alice", "shared=true"))
          .hasMessageContaining("refused STARTTLS");
    }
  }

  /** nbdkit's server (GnuTLS) as the upstream: the interoperability that matters. */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"x509", "psk"})
  void toNbdkit(String credentials) throws Exception {
    Tools.require("nbdkit");
    Path disk = disk();
    Path socket = dir.resolve("nbdkit.sock");
    Path pidfile = dir.resolve("nbdkit.pid");
    Path pki = TestPki.certificates(dir.resolve("pki"), "test CA");
    Path keys = TestPki.pskFile(dir.resolve("keys.psk"), "alice", ALICE_KEY);
    List<String> command = new ArrayList<>(List.of("nbdkit", "-f", "-U", socket.toString(), "-P", pidfile.toString(),
        "--tls=require"));
    command.add(credentials.equals("x509") ? "--tls-certificates=" + pki : "--tls-psk=" + keys);
    command.addAll(List.of("file", disk.toString()));
    Process nbdkit = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(dir.resolve("nbdkit.log").toFile()).start();
    try {
      for (int i = 0; i < 600 && !Files.exists(pidfile) && nbdkit.isAlive(); i++) {
        Thread.sleep(50);
      }
      assertThat(pidfile).as(Files.readString(dir.resolve("nbdkit.log"))).exists();
      String[] proxyKeys = credentials.equals("x509")
          ? new String[] {"socket=" + socket, "tls=require", "tls-certificates=" + pki}
          : new String[] {"socket=" + socket, "tls=require", "tls-psk=" + keys, "tls-username=alice"};
      assertThat(copyThroughProxy(proxyKeys)).isEqualTo(Files.readAllBytes(disk));
    } finally {
      nbdkit.destroy();
      nbdkit.waitFor(30, TimeUnit.SECONDS);
    }
  }

  private static String[] append(String[] keys, String key) {
    String[] all = java.util.Arrays.copyOf(keys, keys.length + 1);
    all[keys.length] = key;
    return all;
  }
}
