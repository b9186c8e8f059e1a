package io.jnbd.plugins.http;

import static io.jnbd.testing.TestData.randomBytes;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Plugin;
import io.jnbd.testing.Layers;
import io.jnbd.testing.OriginGate;
import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The http plugin served over NBD to real clients. */
class HttpOverNbdTest {
  @TempDir Path dir;

  @Test
  void failedReadIsEioAndTheConnectionStaysUp() throws Exception {
    Tools.require("nbdsh");
    byte[] data = randomBytes(256 * 1024, 7);
    try (RangeOrigin origin = RangeOrigin.http(data)) {
      try (TestServer server = servedAfterProbe(Layers.plugin("curl", "url=" + origin.url()))) {
      origin.failNext(RangeOrigin.Fault.STATUS_500, 1);
      String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(java.util.Arrays.copyOf(data, 4096)));
      Tools.Result result = Tools.nbdsh(server.uri(), String.join("\n",
          "import errno, hashlib",
          "try:",
          "    h.pread(4096, 0)",
          "    print('first read succeeded')",
          "except nbd.Error as e:",
          "    print('first read failed:', e)",
          "print('read-only', h.is_read_only(), 'multi-conn', h.can_multi_conn())",
          "print('sha', hashlib.sha256(h.pread(4096, 0)).hexdigest())")).assertSuccess();
      assertThat(result.stdout()).containsPattern("first read failed:.*(Input/output error|EIO)").contains("read-only True multi-conn True", "sha " + sha);
      }
    }
  }

  /**
   * Serves the plugin, opened once first: the size probe happens at the first open, so a fault
   * armed afterwards meets a client's request. The server is closed if that open fails.
   */
  private static TestServer servedAfterProbe(Plugin plugin) throws Exception {
    TestServer server = new TestServer(plugin);
    try {
      plugin.open(true, "").close();
      return server;
    } catch (Exception | Error e) {
      server.close();
      throw e;
    }
  }

  /** The http plugin with retries on a {@link FakePacer}. */
  private static TestServer serverWithoutWaits(String url, FakePacer pacer) throws Exception {
    HttpPlugin plugin = new HttpPlugin(pacer, new Random(1));
    plugin.config("url", url);
    return servedAfterProbe(plugin);
  }

  @Test
  void nbdcopyMakesAnIdenticalCopyAcrossATwoSecondOutage() throws Exception {
    Tools.require("nbdcopy");
    byte[] data = randomBytes(4 << 20, 11);
    FakePacer pacer = new FakePacer();
    try (RangeOrigin origin = RangeOrigin.http(data); OriginGate gate = new OriginGate(origin.port());
        TestServer server = serverWithoutWaits(gate.url("/disk.img"), pacer)) {
      gate.refuse();
      pacer.at(Duration.ofSeconds(2), gate::open);
      Path copy = dir.resolve("copy.raw");
      Tools.run(List.of("nbdcopy", server.uri(), copy.toString()), Map.of(), 60).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(data);
      assertThat(pacer.elapsed()).isGreaterThanOrEqualTo(Duration.ofSeconds(2));
    }
  }

  @Test
  void nbdcopyFailsWhenTheImageChangesDuringTheCopy() throws Exception {
    Tools.require("nbdcopy");
    byte[] data = randomBytes(4 << 20, 11);
    try (RangeOrigin origin = RangeOrigin.http(data)) {
      origin.change(data, "\"v1\"", null);
      try (TestServer server = serverWithoutWaits(origin.url(), new FakePacer())) {
        origin.change(randomBytes(4 << 20, 12), "\"v2\"", null);
        Tools.Result result = Tools.run(List.of("nbdcopy", server.uri(), dir.resolve("copy.raw").toString()), Map.of(), 60);
        assertThat(result.exitCode()).isNotZero();
        assertThat(result.stderr()).contains("Input/output error");
      }
    }
  }

  @Test
  @Tag("slow")
  void qemuImgAndNbdcopyMakeIdenticalCopies() throws Exception {
    Tools.require("qemu-img", "nbdcopy");
    byte[] image = new byte[64 << 20];
    Random random = new Random(1);
    for (int at = 0; at < image.length; at += 1 << 20) {
      if (random.nextInt(3) != 0) {
        byte[] chunk = new byte[1 << 19];
        random.nextBytes(chunk);
        System.arraycopy(chunk, 0, image, at + random.nextInt(1 << 19), chunk.length);
      }
    }
    try (RangeOrigin origin = RangeOrigin.http(image);
        TestServer server = new TestServer(Layers.plugin("http", "url=" + origin.url(), "connections=4"))) {
      Path byQemu = dir.resolve("qemu.raw");
      Tools.run(List.of("qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri(), byQemu.toString()), Map.of(), 120)
          .assertSuccess();
      assertThat(Files.readAllBytes(byQemu)).isEqualTo(image);
      Path byNbdcopy = dir.resolve("nbdcopy.raw");
      Tools.run(List.of("nbdcopy", server.uri(), byNbdcopy.toString()), Map.of(), 120).assertSuccess();
      assertThat(Files.readAllBytes(byNbdcopy)).isEqualTo(image);
    }
  }
}
