package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Client;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.plugins.MemoryPlugin;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.server.tls.TlsSettings;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestPki;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NBD over TLS against the real clients (nbdinfo, nbdcopy, nbdsh, qemu-img), which all use
 * GnuTLS: x509 over TCP and Unix sockets, PSK, client certificates, and for each way a client can
 * be refused, the failure nbdkit gives with the same flags, after which the server still serves.
 * The certificates and keys are made here.
 */
@Tag("slow")
class TlsRealClientsTest {
  private static final byte[] ALICE_KEY = HexFormat.of().parseHex("1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988");
  private static final byte[] WRONG_KEY = HexFormat.of().parseHex("00112233445566778899aabbccddeeff");
  /** What libnbd says before the reason: the step that failed, as in "gnutls_handshake: ...". */
  private static final Pattern FAILED_STEP = Pattern.compile("nbd_connect_uri: ([a-z_ ]+):");

  @TempDir Path dir;
  private Path pki;
  private Path aliceKeys;
  private Path data;

  @BeforeEach
  void makeCredentialsAndData() throws IOException {
    pki = TestPki.certificates(dir.resolve("pki"), "jnbd test CA");
    aliceKeys = TestPki.pskFile(dir.resolve("psk/keys.psk"), "alice", ALICE_KEY);
    data = dir.resolve("data.img");
    byte[] bytes = new byte[24 << 20];
    new Random(13).nextBytes(bytes);
    Files.write(data, bytes);
  }

  private static TlsPolicy x509(Path certificates, boolean verifyPeer) {
    return TlsPolicy.load(new TlsSettings(TlsMode.REQUIRE, certificates, null, verifyPeer, true));
  }

  private static TlsPolicy psk(Path file) {
    return TlsPolicy.load(new TlsSettings(TlsMode.REQUIRE, null, file, false, true));
  }

  /** Remembers the client that each open saw. */
  private static final class ClientRecorder implements Filter {
    final List<Optional<Client>> clients = new CopyOnWriteArrayList<>();

    @Override
    public String name() {
      return "client-recorder";
    }

    @Override
    public String description() {
      return "records Client.current() at open";
    }

    @Override
    public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
      clients.add(Client.current());
      return next.open(readOnly, exportName);
    }
  }

  private static TestServer serve(TlsPolicy tls, Filter... filters) {
    return new TestServer(Stacks.configured(List.of(filters), new MemoryPlugin(), "size=24M"), ServerConfig.defaults(), tls)
        .withTcp();
  }

  /** Writes data with nbdcopy, reads it back with nbdcopy: the same bytes both ways. */
  private void roundTrip(String uri) throws IOException {
    Tools.run("nbdcopy", data.toString(), uri).assertSuccess();
    Path back = dir.resolve("back.img");
    Files.deleteIfExists(back);
    Tools.run("nbdcopy", uri, back.toString()).assertSuccess();
    assertThat(Files.mismatch(data, back)).as(uri).isEqualTo(-1);
  }

  /** nbdsh connecting to uri (whose files it may read) and printing the size: its output or error. */
  private static Tools.Result nbdsh(String uri) {
    return Tools.run(List.of("nbdsh", "-c", "h.set_uri_allow_local_file(True)", "-c", "h.connect_uri('" + uri + "')",
        "-c", "print('size', h.get_size())"), Map.of(), 60);
  }

  /** The step libnbd names in a failed connection's message. */
  private static String failedStep(Tools.Result result) {
    assertThat(result.exitCode()).as(result.stdout()).isNotZero();
    Matcher matcher = FAILED_STEP.matcher(result.stderr());
    assertThat(matcher.find()).as(result.stderr()).isTrue();
    return matcher.group(1);
  }

  /**
   * A client that must be refused: jnbd refuses it at the same step as nbdkit with the same flags
   * (for a TLS failure, in a GnuTLS step: where GnuTLS notices depends on the TLS version)
   * (URI_HOST, URI_PORT and URI_SOCKET in the URI template are filled in for each), then serves a
   * good client on the same server.
   */
  private void refusedLikeNbdkit(TlsPolicy tls, List<String> nbdkitFlags, boolean tcp, String badUri, String goodUri)
      throws Exception {
    String jnbdStep;
    try (TestServer server = serve(tls)) {
      Tools.Result refused = nbdsh(fill(badUri, tcp, server.port(), server.socket()));
      jnbdStep = failedStep(refused);
      assertThat(nbdsh(fill(goodUri, tcp, server.port(), server.socket())).assertSuccess().stdout())
          .as("the server survives").contains("size 25165824");
      System.out.println("jnbd:   " + refused.stderr().strip());
    }
    List<String> command = new ArrayList<>(nbdkitFlags);
    command.addAll(List.of("memory", "24M"));
    try (Nbdkit nbdkit = new Nbdkit(tcp ? Nbdkit.freePort() : 0, command)) {
      int port = tcp ? Integer.parseInt(nbdkit.uri().substring(nbdkit.uri().lastIndexOf(':') + 1)) : 0;
      Tools.Result refused = nbdsh(fill(badUri, tcp, port, nbdkit.socket()));
      System.out.println("nbdkit: " + refused.stderr().strip());
      String nbdkitStep = failedStep(refused);
      if (nbdkitStep.startsWith("gnutls_")) {
        assertThat(jnbdStep).as("jnbd, then nbdkit: " + refused.stderr()).startsWith("gnutls_");
      } else {
        assertThat(jnbdStep).as("jnbd, then nbdkit: " + refused.stderr()).isEqualTo(nbdkitStep);
      }
    }
  }

  private static String fill(String template, boolean tcp, int port, Path socket) {
    return tcp ? template.replace("URI_HOST", "localhost:" + port) : template.replace("URI_SOCKET", socket.toString());
  }

  @Test
  void x509OverTcpAndUnixWithNbdinfoAndNbdcopy() throws IOException {
    Tools.require("nbdinfo", "nbdcopy");
    try (TestServer server = serve(x509(pki, false))) {
      String tcp = "nbds://localhost:" + server.port() + "/?tls-certificates=" + pki;
      String unix = "nbds+unix:///?socket=" + server.socket() + "&tls-certificates=" + pki;
      assertThat(Tools.run("nbdinfo", tcp).assertSuccess().stdout()).contains("with TLS").contains("25165824");
      assertThat(Tools.run("nbdinfo", unix).assertSuccess().stdout()).contains("with TLS");
      roundTrip(tcp);
      roundTrip(unix);
    }
  }

  @Test
  void pskWithNbdinfoAndNbdcopyAndTheUsernameReachesTheLayers() throws IOException {
    Tools.require("nbdinfo", "nbdcopy");
    ClientRecorder recorder = new ClientRecorder();
    try (TestServer server = serve(psk(aliceKeys), recorder)) {
      String tcp = "nbds://alice@localhost:" + server.port() + "/?tls-psk-file=" + aliceKeys;
      String unix = "nbds+unix://alice@/?socket=" + server.socket() + "&tls-psk-file=" + aliceKeys;
      assertThat(Tools.run("nbdinfo", tcp).assertSuccess().stdout()).contains("with TLS").contains("25165824");
      roundTrip(unix);
      assertThat(recorder.clients).isNotEmpty().allSatisfy(client ->
          assertThat(client).hasValueSatisfying(c -> assertThat(c.tlsUsername()).isEqualTo("alice")));
    }
  }

  @Test
  void clientCertificatesUnderVerifyPeer() throws IOException {
    Tools.require("nbdcopy");
    try (TestServer server = serve(x509(pki, true))) {
      roundTrip("nbds://localhost:" + server.port() + "/?tls-certificates=" + pki);
    }
  }

  @Test
  void qemuImgWithX509AndPskCredentials() throws IOException {
    Tools.require("qemu-img");
    // qemu's PSK object reads keys.psk from a directory; its username picks the line.
    for (boolean usePsk : new boolean[] {false, true}) {
      try (TestServer server = serve(usePsk ? psk(aliceKeys) : x509(pki, true))) {
        String object = usePsk
            ? "tls-creds-psk,id=tls0,endpoint=client,username=alice,dir=" + aliceKeys.getParent()
            : "tls-creds-x509,id=tls0,endpoint=client,dir=" + pki;
        String image = "driver=nbd,host=localhost,port=" + server.port() + ",tls-creds=tls0";
        Tools.run(List.of("qemu-img", "convert", "-n", "--object", object, "-f", "raw", data.toString(),
            "--target-image-opts", image), Map.of(), 120).assertSuccess();
        Path back = dir.resolve("qemu-back.img");
        Files.deleteIfExists(back);
        Tools.run(List.of("qemu-img", "convert", "--object", object, "--image-opts", image, "-O", "raw", back.toString()),
            Map.of(), 120).assertSuccess();
        assertThat(Files.mismatch(data, back)).as(usePsk ? "psk" : "x509").isEqualTo(-1);
      }
    }
  }

  @Test
  void aClientWithoutTlsIsRefusedWhenTlsIsRequired() throws Exception {
    Tools.require("nbdsh", "nbdkit");
    refusedLikeNbdkit(x509(pki, false), List.of("--tls=require", "--tls-certificates=" + pki), false,
        "nbd+unix:///?socket=URI_SOCKET", "nbds+unix:///?socket=URI_SOCKET&tls-certificates=" + pki);
  }

  @Test
  void aWrongPreSharedKeyIsRefused() throws Exception {
    Tools.require("nbdsh", "nbdkit");
    Path wrong = TestPki.pskFile(dir.resolve("wrong/keys.psk"), "alice", WRONG_KEY);
    refusedLikeNbdkit(psk(aliceKeys), List.of("--tls=require", "--tls-psk=" + aliceKeys), false,
        "nbds+unix://alice@/?socket=URI_SOCKET&tls-psk-file=" + wrong,
        "nbds+unix://alice@/?socket=URI_SOCKET&tls-psk-file=" + aliceKeys);
  }

  @Test
  void aServerCertificateFromAnotherCaIsRefusedByTheClient() throws Exception {
    Tools.require("nbdsh", "nbdkit");
    // libnbd checks the server's certificate only over TCP, where it has a host name to check.
    Path otherCa = TestPki.certificates(dir.resolve("other"), "another CA");
    refusedLikeNbdkit(x509(pki, false), List.of("--tls=require", "--tls-certificates=" + pki), true,
        "nbds://URI_HOST/?tls-certificates=" + otherCa, "nbds://URI_HOST/?tls-certificates=" + pki);
  }

  @Test
  void aClientWithoutCertificateIsRefusedUnderVerifyPeer() throws Exception {
    Tools.require("nbdsh", "nbdkit");
    Path caOnly = Files.createDirectories(dir.resolve("ca-only"));
    Files.copy(pki.resolve("ca-cert.pem"), caOnly.resolve("ca-cert.pem"));
    refusedLikeNbdkit(x509(pki, true), List.of("--tls=require", "--tls-verify-peer", "--tls-certificates=" + pki), false,
        "nbds+unix:///?socket=URI_SOCKET&tls-certificates=" + caOnly,
        "nbds+unix:///?socket=URI_SOCKET&tls-certificates=" + pki);
  }
}
