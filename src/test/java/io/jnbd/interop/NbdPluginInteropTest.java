package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Plugin;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.Layers;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The nbd plugin in front of real NBD servers (nbdkit, qemu-nbd, and qemu-nbd started by
 * {@code command=}), driven by real clients: nbdsh sends every command, nbdcopy copies in and
 * out, nbdinfo maps extents and qemu-img compares.
 */
@Tag("slow")
class NbdPluginInteropTest {
  private static final int MIB = 1 << 20;
  @TempDir Path dir;

  /** Half random data, half zeroes in 64 KiB blocks, so that extents have something to show. */
  private static byte[] image(int size, long seed) {
    byte[] bytes = new byte[size];
    Random random = new Random(seed);
    for (int i = 0; i < size; i += 65536) {
      if (random.nextBoolean()) {
        byte[] block = new byte[65536];
        random.nextBytes(block);
        System.arraycopy(block, 0, bytes, i, Math.min(block.length, size - i));
      }
    }
    return bytes;
  }

  private static TestServer proxy(String... keyValues) {
    Plugin plugin = Layers.plugin("nbd", keyValues);
    return new TestServer(List.of(), plugin, ServerConfig.defaults());
  }

  /** What nbdinfo says about an export's size, flags and block sizes (or, with false, all but block sizes). */
  private static List<String> capabilities(String uri, boolean blockSizes) {
    return Tools.run("nbdinfo", uri).assertSuccess().stdout().lines()
        .map(String::trim)
        .filter(line -> line.matches(blockSizes ? "(is_|can_|block_size_|export-size).*" : "(is_|can_|export-size).*"))
        .toList();
  }

  private static String map(String uri) {
    return Tools.run("nbdinfo", "--map", uri).assertSuccess().stdout();
  }

  /** Every command through the proxy to nbdkit, with nbdkit's own answers to compare. */
  @Test
  void nbdshSendsEveryCommandThroughToNbdkit() throws Exception {
    Tools.require("nbdkit", "nbdsh", "nbdinfo");
    try (Nbdkit nbdkit = new Nbdkit(List.of("memory", "64M")); TestServer proxy = proxy("socket=" + nbdkit.socket())) {
      // nbdkit 1.32's memory plugin sends no block sizes, and jnbd always does.
      assertThat(capabilities(proxy.uri(), false)).isEqualTo(capabilities(nbdkit.uri(), false));
      Tools.nbdshWithExtents(proxy.uri(), String.join("\n",
          "import errno",
          "h.pwrite(b'a' * 65536, 1 << 20, nbd.CMD_FLAG_FUA)",
          "h.pwrite(b'b' * 100, 3 << 20)",
          "h.flush()",
          "assert h.pread(65536, 1 << 20) == b'a' * 65536",
          "h.zero(4096, (1 << 20) + 4096, nbd.CMD_FLAG_NO_HOLE)",
          "assert h.pread(8192, 1 << 20) == b'a' * 4096 + bytes(4096)",
          "h.zero(65536, 2 << 20, nbd.CMD_FLAG_FAST_ZERO)",
          "h.trim(4096, 3 << 20)",
          "assert h.pread(100, 3 << 20) == bytes(100)",
          "h.cache(1 << 20, 0)",
          "seen = []",
          "def extent(meta, offset, entries, err):",
          "    seen.extend(entries)",
          "h.block_status(4 << 20, 0, extent)",
          "assert seen[:4] == [1 << 20, 3, 65536, 0], seen",
          "seen.clear()",
          "h.block_status(8 << 20, 0, extent, nbd.CMD_FLAG_REQ_ONE)",
          "assert len(seen) == 2 and seen[0] <= 8 << 20, seen",
          "try:",
          "    h.pread(512, (64 << 20) - 256)",
          "    assert False, 'read past the end'",
          "except nbd.Error as e:",
          "    assert e.errnum == errno.EINVAL, e")).assertSuccess();
      assertThat(map(proxy.uri())).isEqualTo(map(nbdkit.uri()));
    }
  }

  /** Servers from before fixed newstyle: oldstyle (nbdkit -o), and newstyle without the fixed flag. */
  @ParameterizedTest
  @ValueSource(strings = {"--oldstyle", "--mask-handshake=0"})
  void olderServersAreReadAndWritten(String style) throws Exception {
    Tools.require("nbdkit", "nbdsh");
    try (Nbdkit nbdkit = new Nbdkit(List.of(style, "memory", "1M")); TestServer proxy = proxy("socket=" + nbdkit.socket())) {
      Tools.nbdsh(proxy.uri(), String.join("\n",
          "assert h.get_size() == 1 << 20",
          "h.pwrite(b'old' * 1000, 4096)",
          "assert h.pread(3000, 4096) == b'old' * 1000")).assertSuccess();
    }
  }

  /** dynamic-export=true: the upstream's export list, and each client's export name passed on. */
  @Test
  void dynamicExportListsAndOpensTheUpstreamsExports() throws Exception {
    Tools.require("nbdkit", "nbdinfo", "nbdsh");
    try (Nbdkit nbdkit = new Nbdkit(List.of("--filter=exportname", "info", "exportname-list=explicit",
            "exportname=alpha", "exportname=beta"));
        TestServer proxy = proxy("socket=" + nbdkit.socket(), "dynamic-export=true")) {
      assertThat(Tools.run("nbdinfo", "--list", proxy.uri()).assertSuccess().stdout())
          .contains("export=\"alpha\"", "export=\"beta\"");
      // nbdkit's info plugin serves the export name it was asked for.
      Tools.nbdsh(proxy.uri("beta"), "assert h.pread(h.get_size(), 0) == b'beta'").assertSuccess();
      Tools.nbdsh(proxy.uri("alpha"), "assert h.pread(h.get_size(), 0) == b'alpha'").assertSuccess();
    }
  }

  @Test
  void blockSizesAreTheUpstreams() throws Exception {
    Tools.require("nbdkit", "nbdinfo", "nbdcopy");
    try (Nbdkit nbdkit = new Nbdkit(List.of("--filter=blocksize-policy", "memory", "4M",
            "blocksize-minimum=512", "blocksize-preferred=65536", "blocksize-maximum=1M"));
        TestServer proxy = proxy("socket=" + nbdkit.socket())) {
      assertThat(capabilities(proxy.uri(), true)).isEqualTo(capabilities(nbdkit.uri(), true))
          .contains("block_size_minimum: 512", "block_size_preferred: 65536", "block_size_maximum: 1048576");
      byte[] bytes = image(4 * MIB, 4);
      Path source = Files.write(dir.resolve("source.img"), bytes);
      Tools.run("nbdcopy", source.toString(), proxy.uri()).assertSuccess();
      Path copy = dir.resolve("copy.img");
      Tools.run("nbdcopy", nbdkit.uri(), copy.toString()).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(bytes);
    }
  }

  @Test
  void writesToAReadOnlyUpstreamGetEperm() throws Exception {
    Tools.require("nbdkit", "nbdsh");
    try (Nbdkit nbdkit = new Nbdkit(List.of("-r", "memory", "1M")); TestServer proxy = proxy("socket=" + nbdkit.socket())) {
      Tools.nbdsh(proxy.uri(), String.join("\n",
          "import errno",
          "assert h.is_read_only()",
          "assert h.pread(512, 0) == bytes(512)",
          "h.set_strict_mode(0)",
          "try:",
          "    h.pwrite(b'x' * 512, 0)",
          "    assert False, 'write succeeded'",
          "except nbd.Error as e:",
          "    assert e.errnum == errno.EPERM, e")).assertSuccess();
    }
    // The proxy itself writable, the upstream export read-only: the upstream's EPERM comes back.
    try (Nbdkit nbdkit = new Nbdkit(List.of("--filter=error", "memory", "1M", "error-pwrite=EPERM", "error-pwrite-rate=100%"));
        TestServer proxy = proxy("socket=" + nbdkit.socket())) {
      Tools.nbdsh(proxy.uri(), String.join("\n",
          "import errno",
          "try:",
          "    h.pwrite(b'x' * 512, 0)",
          "    assert False, 'write succeeded'",
          "except nbd.Error as e:",
          "    assert e.errnum == errno.EPERM, e")).assertSuccess();
    }
  }

  /** nbdcopy in and out through the proxy with a shared connection, and qemu-img compare. */
  @Test
  void nbdcopyThroughASharedConnectionIsByteIdentical() throws Exception {
    Tools.require("nbdkit", "nbdcopy", "qemu-img");
    byte[] bytes = image(16 * MIB, 1);
    Path source = Files.write(dir.resolve("source.img"), bytes);
    try (Nbdkit nbdkit = new Nbdkit(List.of("memory", "16M"));
        TestServer proxy = proxy("uri=" + nbdkit.uri(), "shared=true")) {
      Tools.run(List.of("nbdcopy", "--requests=64", "--flush", source.toString(), proxy.uri()), Map.of(), 120).assertSuccess();
      Path copy = dir.resolve("copy.img");
      Tools.run("nbdcopy", proxy.uri(), copy.toString()).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(bytes);
      Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), proxy.uri()).assertSuccess();
      Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), nbdkit.uri()).assertSuccess();
    }
  }

  /** A qcow2 file served by qemu-nbd on a Unix socket, read and written through the proxy. */
  @Test
  void qemuNbdOnAUnixSocketThroughTheProxy() throws Exception {
    Tools.require("qemu-img", "qemu-nbd", "nbdcopy", "nbdinfo");
    byte[] bytes = image(8 * MIB, 2);
    Path source = Files.write(dir.resolve("source.img"), bytes);
    Path qcow2 = dir.resolve("disk.qcow2");
    Tools.run("qemu-img", "create", "-q", "-f", "qcow2", qcow2.toString(), "8M").assertSuccess();
    Path socket = dir.resolve("qemu.sock");
    Process qemuNbd = new ProcessBuilder("qemu-nbd", "-t", "-k", socket.toString(), "-f", "qcow2", qcow2.toString())
        .redirectErrorStream(true).redirectOutput(dir.resolve("qemu-nbd.log").toFile()).start();
    try {
      for (int i = 0; i < 1000 && !Files.exists(socket); i++) {
        Thread.sleep(10);
      }
      String direct = "nbd+unix:///?socket=" + socket;
      try (TestServer proxy = proxy("uri=" + direct)) {
        Tools.run("nbdcopy", source.toString(), proxy.uri()).assertSuccess();
        assertThat(map(proxy.uri())).isEqualTo(map(direct));
        assertThat(capabilities(proxy.uri(), true)).isEqualTo(capabilities(direct, true));
        Path copy = dir.resolve("copy.img");
        Tools.run("nbdcopy", proxy.uri(), copy.toString()).assertSuccess();
        assertThat(Files.readAllBytes(copy)).isEqualTo(bytes);
      }
    } finally {
      qemuNbd.destroy();
      qemuNbd.waitFor(30, TimeUnit.SECONDS);
    }
    // The writes reached the qcow2 file itself.
    Tools.run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", source.toString(), qcow2.toString()).assertSuccess();
  }

  /** command=qemu-nbd: the proxy runs the upstream server itself and stops it at unload. */
  @Test
  void commandRunsQemuNbdWithASocketHandedToIt() throws Exception {
    Tools.require("qemu-img", "qemu-nbd", "nbdcopy", "systemd-socket-activate");
    byte[] bytes = image(4 * MIB, 3);
    Path raw = Files.write(dir.resolve("base.img"), bytes);
    Path qcow2 = dir.resolve("disk.qcow2");
    Tools.run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw.toString(), qcow2.toString()).assertSuccess();
    List<String> keyValues = new ArrayList<>(List.of("command=qemu-nbd", "arg=-f", "arg=qcow2", "arg=" + qcow2));
    try (TestServer proxy = proxy(keyValues.toArray(String[]::new))) {
      Path copy = dir.resolve("copy.img");
      Tools.run("nbdcopy", proxy.uri(), copy.toString()).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(bytes);
    }
    // Closing the server unloaded the plugin, which stopped qemu-nbd and so released the image.
    assertThat(Tools.run("pgrep", "-f", "qemu-nbd -f qcow2 " + qcow2).exitCode()).isEqualTo(1);
  }
}
