package io.jnbd.plugins;

import static io.jnbd.plugins.Plugins.configured;
import static io.jnbd.plugins.Plugins.write;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.api.Plugin;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The plugins served to real clients: nbdinfo, nbdcopy, qemu-img, and nbdkit as the reference. */
@Tag("slow")
class PluginsRealClientsTest {
  private static final int MIB = 1 << 20;
  @TempDir Path dir;

  /** nbdinfo --map as "offset length type" lines. */
  private static List<String> map(String uri) {
    List<String> lines = new ArrayList<>();
    for (String line : Tools.run("nbdinfo", "--map", uri).assertSuccess().stdout().split("\n")) {
      String[] fields = line.trim().split("\\s+");
      if (fields.length >= 3) {
        lines.add(fields[0] + " " + fields[1] + " " + fields[2]);
      }
    }
    return lines;
  }

  /** Runs nbdkit with a plugin and copies what it serves into a file: the reference bytes. */
  private Path nbdkitReference(String name, String... args) {
    Path out = dir.resolve(name + "-nbdkit.img");
    List<String> command = new ArrayList<>(List.of("nbdkit", "-U", "-"));
    command.addAll(List.of(args));
    command.addAll(List.of("--run", "nbdcopy \"$uri\" " + out));
    Tools.run(command, Map.of(), 120).assertSuccess();
    return out;
  }

  private Path copyOut(TestServer server, String name) {
    Path out = dir.resolve(name);
    Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
    return out;
  }

  @Test
  void nbdinfoMapsTheHolesOfAMemoryDisk() throws Exception {
    Tools.require("nbdinfo");
    Plugin memory = configured("memory", "size=8M");
    try (Export export = memory.open(false, "")) {
      write(export, 2 * MIB + 5, new byte[] {1});
      write(export, 7 * MIB, new byte[] {2});
    }
    try (TestServer server = new TestServer(memory)) {
      int page = SparseStore.DEFAULT_PAGE_SIZE;
      assertThat(map(server.uri())).containsExactly(
          "0 " + 2 * MIB + " 3",
          2 * MIB + " " + page + " 0",
          (2 * MIB + page) + " " + (5 * MIB - page) + " 3",
          7 * MIB + " " + page + " 0",
          (7 * MIB + page) + " " + (MIB - page) + " 3");
    }
  }

  @Test
  void nbdinfoMapsTheHolesOfAFile() throws Exception {
    Tools.require("nbdinfo");
    assertThat(NativeFileOps.available()).as(NativeFileOps::unavailableReason).isTrue();
    Path file = dir.resolve("sparse.img");
    try (RandomAccessFile sparse = new RandomAccessFile(file.toFile(), "rw")) {
      sparse.setLength(8 * MIB);
      sparse.seek(4 * MIB);
      sparse.write(new byte[MIB / 2 + 1]);
    }
    Plugin plugin = configured("file", "file=" + file);
    try (TestServer server = new TestServer(plugin)) {
      List<String> lines = map(server.uri());
      // Data lies somewhere around [4M, 4.5M]; its exact block rounding is the file system's.
      assertThat(lines).hasSize(3);
      assertThat(lines.get(0)).startsWith("0 ").endsWith(" 3");
      assertThat(lines.get(1)).endsWith(" 0");
      assertThat(lines.get(2)).endsWith(" 3");
      long dataStart = Long.parseLong(lines.get(1).split(" ")[0]);
      long dataLength = Long.parseLong(lines.get(1).split(" ")[1]);
      assertThat(dataStart).isLessThanOrEqualTo(4 * MIB);
      assertThat(dataStart + dataLength).isGreaterThan(4 * MIB + MIB / 2);
    } finally {
      plugin.unload();
    }
  }

  @Test
  void nbdcopyOfAFileExportIsByteIdenticalAndWritesGoThrough() throws Exception {
    Tools.require("nbdcopy");
    byte[] bytes = new byte[3 * MIB + 7];
    new Random(7).nextBytes(bytes);
    Path file = dir.resolve("disk.img");
    Files.write(file, bytes);
    Plugin plugin = configured("file", "file=" + file);
    try (TestServer server = new TestServer(plugin)) {
      assertThat(Files.readAllBytes(copyOut(server, "copy.img"))).isEqualTo(bytes);
      // And the other way: a different image copied in with several connections.
      byte[] other = new byte[bytes.length];
      new Random(8).nextBytes(other);
      Path source = dir.resolve("other.img");
      Files.write(source, other);
      Tools.run("nbdcopy", source.toString(), server.uri()).assertSuccess();
      assertThat(Files.readAllBytes(file)).isEqualTo(other);
    } finally {
      plugin.unload();
    }
  }

  @Test
  void withoutNativeCallsTheServerWritesZeroesForTheFilePlugin() throws Exception {
    Tools.require("nbdsh");
    Path file = dir.resolve("plain.img");
    byte[] ones = new byte[64 * 1024];
    java.util.Arrays.fill(ones, (byte) 1);
    Files.write(file, ones);
    FilePlugin plugin = new FilePlugin(false);
    plugin.config("file", file.toString());
    plugin.configComplete();
    try (TestServer server = new TestServer(plugin)) {
      Tools.nbdsh(server.uri(), String.join("\n",
          "assert not h.can_trim()",
          "assert h.can_zero() and not h.can_fast_zero()",
          "h.zero(4096, 8192)",
          "assert h.pread(4096, 8192) == bytearray(4096)",
          "assert h.pread(1, 8191) == b'\\x01'")).assertSuccess();
      byte[] after = Files.readAllBytes(file);
      assertThat(java.util.Arrays.copyOfRange(after, 8192, 12288)).containsOnly(0);
      assertThat(after[8191]).isEqualTo((byte) 1);
      assertThat(after[12288]).isEqualTo((byte) 1);
    } finally {
      plugin.unload();
    }
  }

  @Test
  void nbdcopyIntoAMemoryDiskAndBackRoundTrips() throws Exception {
    Tools.require("nbdcopy");
    byte[] bytes = new byte[4 * MIB];
    Random random = new Random(9);
    for (int i = 0; i < bytes.length; i += 4096) {
      if (random.nextBoolean()) { // half data, half zeroes, so sparse paths are used
        for (int j = i; j < i + 4096; j++) {
          bytes[j] = (byte) random.nextInt();
        }
      }
    }
    Path source = dir.resolve("source.img");
    Files.write(source, bytes);
    try (TestServer server = new TestServer(configured("memory", "size=4M"))) {
      Tools.run("nbdcopy", source.toString(), server.uri()).assertSuccess();
      assertThat(Files.readAllBytes(copyOut(server, "back.img"))).isEqualTo(bytes);
    }
  }

  @Test
  void patternIsByteIdenticalToNbdkitsPattern() throws Exception {
    Tools.require("nbdkit", "nbdcopy", "qemu-img");
    Path reference = nbdkitReference("pattern", "pattern", "size=1M");
    try (TestServer server = new TestServer(configured("pattern", "size=1M"))) {
      Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", reference.toString(), server.uri())
          .assertSuccess();
      Path converted = dir.resolve("converted.img");
      Tools.run("qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri(), converted.toString())
          .assertSuccess();
      assertThat(Files.readAllBytes(converted)).isEqualTo(Files.readAllBytes(reference));
    }
    // An odd size ends in the middle of a word.
    Path odd = nbdkitReference("pattern-odd", "pattern", "size=100005");
    try (TestServer server = new TestServer(configured("pattern", "size=100005"))) {
      assertThat(Files.readAllBytes(copyOut(server, "odd.img"))).isEqualTo(Files.readAllBytes(odd));
    }
  }

  @Test
  void dataIsByteIdenticalToNbdkitsData() throws Exception {
    Tools.require("nbdkit", "nbdcopy");
    String data = "( 0x55 0xAA )*3000 @^512 \"Hello\\tworld\\x21\" le32:0x11223344 "
        + "( @3 be16:513 ( 7 )*5 )*100 @+70000 0377 @-9 0x0 @^4096 1";
    Path reference = nbdkitReference("data", "data", data);
    try (TestServer server = new TestServer(configured("data", "data=" + data))) {
      assertThat(Files.readAllBytes(copyOut(server, "data.img"))).isEqualTo(Files.readAllBytes(reference));
    }
  }

  @Test
  void nullServesZeroesToNbdcopy() throws Exception {
    Tools.require("nbdcopy");
    try (TestServer server = new TestServer(configured("null", "size=1M"))) {
      assertThat(Files.readAllBytes(copyOut(server, "null.img"))).containsOnly(0).hasSize(MIB);
    }
  }
}
