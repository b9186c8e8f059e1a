package io.jnbd.filters.cow;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Layers;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The cow filter under nbdsh, qemu-img, nbdcopy and nbdinfo. */
@Tag("slow")
class CowRealClientsTest {
  private static final int MIB = 1 << 20;
  @TempDir Path dir;

  private static TestServer cowOver(String plugin, String... keyValues) {
    return new TestServer(List.of(Layers.filter("cow")), Layers.plugin(plugin, keyValues), ServerConfig.defaults());
  }

  /** The pattern plugin is read-only: through cow it takes writes, zeroes and trims, and reads them back. */
  @Test
  void nbdshWritesThroughCowOverAReadOnlyPlugin() throws Exception {
    Tools.require("nbdsh");
    String check = String.join("\n",
        "import struct",
        "def word(offset): return struct.pack('>Q', offset)",
        "assert not h.is_read_only()",
        "assert h.can_flush() and h.can_fua() and h.can_trim() and h.can_zero() and h.can_cache() and h.can_multi_conn()",
        "assert not h.can_fast_zero()",
        "h.pwrite(b'hello', 1003, nbd.CMD_FLAG_FUA)",
        "h.zero(65536, 65536)",
        "h.trim(2 * 65536, 3 * 65536)",
        "h.flush()",
        "assert h.pread(16, 1000) == word(1000)[:3] + b'hello' + word(1008), h.pread(16, 1000)",
        "assert h.pread(8, 65536) == bytes(8)",
        "assert h.pread(8, 3 * 65536) == bytes(8)",
        "assert h.pread(16, 5 * 65536 - 8) == bytes(8) + word(5 * 65536)",
        "assert h.pread(8, 2 * MiB) == word(2 * MiB)");
    try (TestServer server = cowOver("pattern", "size=4M")) {
      Tools.nbdsh(server.uri(), "MiB = 1 << 20\n" + check).assertSuccess();
      Tools.nbdsh(server.uri(), "assert h.pread(5, 1003) == b'hello', 'a second connection sees the writes'").assertSuccess();
    }
    try (TestServer fresh = cowOver("pattern", "size=4M")) {
      Tools.nbdsh(fresh.uri(), "import struct\nassert h.pread(8, 1000) == struct.pack('>Q', 1000)\n"
          + "assert h.pread(8, 65536) == struct.pack('>Q', 65536)").assertSuccess();
    }
  }

  /** qemu-img writes an image into a file-backed export; the file is never touched, and a new server sees none of it. */
  @Test
  void qemuImgWritesLandInTheOverlayNotTheFile() throws Exception {
    Tools.require("qemu-img", "nbdcopy", "nbdinfo");
    byte[] base = new byte[4 * MIB];
    new Random(1).nextBytes(base);
    Path file = Files.write(dir.resolve("base.img"), base);
    byte[] image = new byte[MIB];
    new Random(2).nextBytes(image);
    Path source = Files.write(dir.resolve("source.img"), image);
    try (TestServer server = cowOver("file", "file=" + file)) {
      Tools.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source.toString(), server.uri()).assertSuccess();
      Path copy = dir.resolve("copy.img");
      Tools.run("nbdcopy", server.uri(), copy.toString()).assertSuccess();
      byte[] expected = base.clone();
      System.arraycopy(image, 0, expected, 0, image.length);
      assertThat(Files.readAllBytes(copy)).isEqualTo(expected);
      assertThat(Files.readAllBytes(file)).as("the file below").isEqualTo(base);
    }
    try (TestServer fresh = cowOver("file", "file=" + file)) {
      Path copy = dir.resolve("fresh.img");
      Tools.run("nbdcopy", fresh.uri(), copy.toString()).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(base);
    }
  }

  /** nbdinfo --map shows written blocks as data over a sparse plugin, the rest as its holes. */
  @Test
  void nbdinfoMapsTheOverlayOverTheHolesBelow() throws Exception {
    Tools.require("nbdinfo", "nbdsh");
    try (TestServer server = cowOver("memory", "size=4M")) {
      Tools.nbdsh(server.uri(), "h.pwrite(b'x', 1048576 + 10)").assertSuccess();
      List<String> map = Tools.run("nbdinfo", "--map", server.uri()).assertSuccess().stdout().lines()
          .map(line -> String.join(" ", List.of(line.trim().split("\\s+")).subList(0, 3))).toList();
      assertThat(map).containsExactly("0 1048576 3", "1048576 65536 0", "1114112 3080192 3");
    }
  }

  /** One server, one overlay per export name, as upstream virt-v2v's -i disk uses it. */
  @Test
  void eachExportHasItsOwnOverlay() throws Exception {
    Tools.require("nbdsh");
    ArrayDisk disk = new ArrayDisk(MIB);
    disk.data[0] = 42;
    try (TestServer server = new TestServer(List.of(Layers.filter("cow")), disk, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri("disk1"), "h.pwrite(b'\\x01', 0)").assertSuccess();
      Tools.nbdsh(server.uri("disk2"), "h.pwrite(b'\\x02', 0)").assertSuccess();
      Tools.nbdsh(server.uri("disk1"), "assert h.pread(1, 0) == b'\\x01'").assertSuccess();
      Tools.nbdsh(server.uri("disk2"), "assert h.pread(1, 0) == b'\\x02'").assertSuccess();
      Tools.nbdsh(server.uri("disk3"), "assert h.pread(1, 0) == b'\\x2a'").assertSuccess();
    }
    assertThat(disk.data[0]).isEqualTo((byte) 42);
    assertThat(ByteBuffer.wrap(disk.data, 1, MIB - 1)).isEqualTo(ByteBuffer.allocate(MIB - 1));
  }
}
