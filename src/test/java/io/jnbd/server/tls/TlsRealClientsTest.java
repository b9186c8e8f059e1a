package io.jnbd.server.tls;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Client;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.plugins.MemoryPlugin;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestPki;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NBD over TLS against the real clients (nbdinfo, nbdcopy, nbdsh, qemu-img), which all use
 * GnuTLS: x509 over TCP and Unix sockets, PSK, client certificates, and the failures each client
 * must see. The certificates and keys are made here.
 */
@Tag("slow")
class TlsRealClientsTest {
  private static final byte[] ALICE_KEY = HexKey.bytes("1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988");

  @TempDir Path dir;
  private Path pki;
  private Path data;

  @BeforeEach
  void makeCredentialsAndData() throws IOException {
    pki = TestPki.certificates(dir.resolve("pki"), "jnbd test CA");
    data = dir.resolve("data.img");
    byte[] bytes = new byte[24 << 20];
    new Random(13).nextBytes(bytes);
    Files.write(data, bytes);
  }

  private static TlsPolicy x509(TlsMode mode, Path certificates, boolean verifyPeer) {
    return TlsPolicy.load(new TlsSettings(mode, certificates, null, verifyPeer, true));
  }

  private static TlsPolicy psk(TlsMode mode, Path file) {
    return TlsPolicy.load(new TlsSettings(mode, null, file, false, true));
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
    assertThat(Files.mismatch(data, back)).isEqualTo(-1);
  }

  @Test
  void x509OverTcpAndUnixWithNbdinfoAndNbdcopy() throws IOException {
    Tools.require("nbdinfo", "nbdcopy");
    try (TestServer server = serve(x509(TlsMode.REQUIRE, pki, false))) {
      String tcp = "nbds://localhost:" + server.port() + "/?tls-certificates=" + pki;
      String unix = "nbds+unix:///?socket=" + server.socket() + "&tls-certificates=" + pki;
      assertThat(Tools.run("nbdinfo", tcp).assertSuccess().stdout()).contains("with TLS").contains("25165824");
      assertThat(Tools.run("nbdinfo", unix).assertSuccess().stdout()).contains("with TLS");
      roundTrip(tcp);
      roundTrip(unix);
    }
  }

  /** Hex for test keys, readable in the source. */
  private static final class HexKey {
    static byte[] bytes(String hex) {
      return java.util.HexFormat.of().parseHex(hex);
    }
  }
}
