package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** nbdinfo, nbdcopy and qemu-img against a jnbd memory export, checked byte for byte. */
@Tag("slow")
class RealClientsInteropTest {
  private static final int SIZE = 8 << 20;

  @TempDir Path temp;

  private static TestServer memoryServer(ServerConfig config) {
    Plugin memory = Catalog.plugin("memory");
    memory.config("size", Integer.toString(SIZE));
    return new TestServer(List.of(), memory, config);
  }

  /** Random data with a hole in the middle, so sparseness shows in maps. */
  private Path sourceImage() throws Exception {
    byte[] data = new byte[SIZE];
    new Random(7).nextBytes(data);
    java.util.Arrays.fill(data, SIZE / 4, SIZE / 2, (byte) 0);
    return Files.write(temp.resolve("source.img"), data);
  }

  @Test
  void nbdinfoReportsSizeFlagsMapAndList() throws Exception {
    Tools.require("nbdinfo", "nbdcopy");
    try (TestServer server = memoryServer(ServerConfig.defaults())) {
      Tools.run("nbdcopy", sourceImage().toString(), server.uri()).assertSuccess();
      String json = Tools.run("nbdinfo", "--json", server.uri()).assertSuccess().stdout();
      assertThat(json).contains("\"export-size\": " + SIZE, "\"can_multi_conn\": true", "\"can_zero\": true",
          "\"is_read_only\": false", "\"base:allocation\"", "\"protocol\": \"newstyle-fixed\"");
      assertThat(Tools.run("nbdinfo", "--size", server.uri()).assertSuccess().stdout().trim()).isEqualTo(Integer.toString(SIZE));
      // The all-zero quarter was never stored: a hole that reads as zero between two data runs.
      String map = Tools.run("nbdinfo", "--map", server.uri()).assertSuccess().stdout();
      assertThat(map.lines().map(String::trim).toList()).containsExactly(
          "0     2097152    0  data",
          "2097152     2097152    3  hole,zero",
          "4194304     4194304    0  data");
      String list = Tools.run("nbdinfo", "--list", "--json", server.uri()).assertSuccess().stdout();
      assertThat(list).contains("\"export-name\": \"\"", "\"export-size\": " + SIZE);
    }
  }

  @Test
  void nbdcopyIntoAndOutOfJnbdOverFourConnections() throws Exception {
    Tools.require("nbdcopy");
    Path source = sourceImage();
    for (String requests : List.of("1", "64")) {
      try (TestServer server = memoryServer(ServerConfig.defaults())) {
        // nbdcopy caps connections at its thread count, which defaults to the number of cores.
        Tools.run("nbdcopy", "--threads=4", "--connections=4", "--requests=" + requests, source.toString(), server.uri())
            .assertSuccess();
        // It opens more than one connection only because jnbd advertises multi-conn.
        assertThat(server.server().acceptedConnections()).as("connections for --requests=" + requests).isEqualTo(4);
        Path copy = temp.resolve("copy-" + requests + ".img");
        Tools.run("nbdcopy", "--threads=4", "--connections=4", "--requests=" + requests, server.uri(), copy.toString())
            .assertSuccess();
        assertThat(server.server().acceptedConnections()).isEqualTo(8);
        assertThat(Files.mismatch(source, copy)).as("copy with --requests=" + requests).isEqualTo(-1);
      }
    }
  }

  @Test
  void qemuImgConvertsIntoJnbdAndComparesInfoAndMap() throws Exception {
    Tools.require("qemu-img");
    Path source = sourceImage();
    try (TestServer server = memoryServer(ServerConfig.defaults())) {
      String uri = server.uri();
      Tools.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source.toString(), uri).assertSuccess();
      Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), uri).assertSuccess();
      assertThat(Tools.run("qemu-img", "info", "--output=json", uri).assertSuccess().stdout())
          .contains("\"virtual-size\": " + SIZE);
      String map = Tools.run("qemu-img", "map", "--output=json", uri).assertSuccess().stdout();
      assertThat(map).contains("\"start\": 2097152, \"length\": 2097152, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false");
      Path back = temp.resolve("back.qcow2");
      Tools.run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", uri, back.toString()).assertSuccess();
      Tools.run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", source.toString(), back.toString()).assertSuccess();
      // One changed byte must be found, so the comparisons above could fail.
      Tools.run("nbdsh", "-u", uri, "-c", "h.pwrite(b'\\x01', 2097152 + 5)").assertSuccess();
      assertThat(Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), uri).exitCode()).isEqualTo(1);
    }
  }
}
