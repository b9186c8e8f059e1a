package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * virt-v2v's {@code -i disk} (local raw disks), replayed through the packaged jar as virt-v2v
 * runs nbdkit: the input server under the cow filter, the guest conversion writing the overlay
 * through qemu, then nbdcopy into an output server on the file plugin. The copy must hold the
 * source with the conversion's writes, and the source files must be untouched.
 */
@Tag("slow")
class VirtV2vDiskIT {
  private static final int MIB = 1 << 20;
  private static final int DISK_SIZE = 16 * MIB;
  /** Filler of the output files before the copy, so that a range the copy skips shows. */
  private static final byte STALE = (byte) 0xee;

  @TempDir Path dir;

  /** virt-v2v 2.2.0: one server per disk, {@code --filter cow file file=DISK cache=none}, output {@code file file=OUT cache=none}. */
  @Test
  void version220CopiesEachDiskThroughItsOwnServer() throws Exception {
    Tools.require("qemu-io", "nbdcopy");
    for (int disk = 0; disk < 2; disk++) {
      Path source = dir.resolve("disk" + disk + ".img");
      byte[] original = writeSparseDisk(source, disk);
      Path output = dir.resolve("out" + disk + ".img");
      fill(output, STALE);
      byte[] expected = original.clone();
      try (V2vServer input = new V2vServer("in" + disk, "--filter", "cow", "file", "file=" + source, "cache=none");
          V2vServer out = new V2vServer("out" + disk, "file", "file=" + output, "cache=none")) {
        convert(input.uri(""), expected, disk);
        copy(input.uri(""), out.uri(""));
      }
      assertSameBytes(output, expected, "disk" + disk + " copied with the conversion's writes");
      assertSameBytes(source, original, "source disk" + disk + " untouched");
    }
  }

  /** Upstream: one server for every disk, {@code --filter cow file dir=DIR}, exports diskN, output {@code file dir=OUTDIR}. */
  @Test
  void upstreamCopiesEveryDiskThroughOneServerWithAnOverlayPerExport() throws Exception {
    Tools.require("qemu-io", "nbdcopy", "nbdinfo");
    Path inputs = Files.createDirectory(dir.resolve("in"));
    Path outputs = Files.createDirectory(dir.resolve("out"));
    List<byte[]> originals = new ArrayList<>();
    List<byte[]> expected = new ArrayList<>();
    for (int disk = 0; disk < 2; disk++) {
      originals.add(writeSparseDisk(inputs.resolve("disk" + disk), disk));
      expected.add(originals.get(disk).clone());
      fill(outputs.resolve("disk" + disk), STALE);
    }
    try (V2vServer input = new V2vServer("in", "--filter", "cow", "file", "dir=" + inputs, "reduce-memory-pressure=on");
        V2vServer out = new V2vServer("out", "file", "dir=" + outputs, "reduce-memory-pressure=on")) {
      String listing = Tools.run(List.of("nbdinfo", "--list", input.uri("")), Map.of(), 120).assertSuccess().stdout();
      assertThat(listing).contains("export=\"disk0\"").contains("export=\"disk1\"");
      // Both conversions first, then both copies: each export's writes stay in its own overlay.
      for (int disk = 0; disk < 2; disk++) {
        convert(input.uri("disk" + disk), expected.get(disk), disk);
      }
      for (int disk = 0; disk < 2; disk++) {
        copy(input.uri("disk" + disk), out.uri("disk" + disk));
      }
    }
    for (int disk = 0; disk < 2; disk++) {
      assertSameBytes(outputs.resolve("disk" + disk), expected.get(disk), "disk" + disk + " copied with its conversion's writes");
      assertSameBytes(inputs.resolve("disk" + disk), originals.get(disk), "source disk" + disk + " untouched");
    }
  }

  /** Compares whole disks, naming the first offset that differs rather than printing 16 MiB. */
  private static void assertSameBytes(Path file, byte[] expected, String what) throws Exception {
    byte[] actual = Files.readAllBytes(file);
    assertThat(actual.length).as(what + ": size").isEqualTo(expected.length);
    assertThat(Arrays.mismatch(actual, expected)).as(what + ": first offset that differs").isEqualTo(-1);
  }

  /**
   * Writes a sparse source disk: random data with a 4 MiB hole in the middle.
   *
   * @return its bytes
   */
  private static byte[] writeSparseDisk(Path file, int seed) throws Exception {
    byte[] bytes = new byte[DISK_SIZE];
    new Random(seed).nextBytes(bytes);
    Arrays.fill(bytes, 6 * MIB, 10 * MIB, (byte) 0);
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      channel.write(ByteBuffer.wrap(bytes, 0, 6 * MIB), 0);
      channel.write(ByteBuffer.wrap(bytes, 10 * MIB, DISK_SIZE - 10 * MIB), 10 * MIB);
    }
    return bytes;
  }

  private static void fill(Path file, byte value) throws Exception {
    byte[] bytes = new byte[DISK_SIZE];
    Arrays.fill(bytes, value);
    Files.write(file, bytes);
  }

  /**
   * What the guest conversion does to a disk, through qemu as virt-v2v opens it (raw, writable,
   * cache=unsafe, discard=unmap): overwrites, a partial write into the hole, zeroes, a discard and
   * a write at the end; each disk with its own bytes. The same changes are applied to {@code expected}.
   */
  private static void convert(String uri, byte[] expected, int disk) {
    byte pattern = (byte) (0xa0 + disk);
    List<String> command = new ArrayList<>(List.of("qemu-io", "-f", "raw", "-t", "unsafe", "-d", "unmap", uri));
    command.addAll(List.of("-c", "write -P " + (pattern & 0xff) + " 1M 64k"));
    Arrays.fill(expected, MIB, MIB + 65536, pattern);
    command.addAll(List.of("-c", "write -P " + ((pattern + 1) & 0xff) + " 7340544 12288"));
    Arrays.fill(expected, 7340544, 7340544 + 12288, (byte) (pattern + 1));
    command.addAll(List.of("-c", "write -z 12M 256k"));
    Arrays.fill(expected, 12 * MIB, 12 * MIB + 262144, (byte) 0);
    command.addAll(List.of("-c", "discard 2M 128k"));
    Arrays.fill(expected, 2 * MIB, 2 * MIB + 131072, (byte) 0);
    command.addAll(List.of("-c", "write -P " + ((pattern + 2) & 0xff) + " " + (DISK_SIZE - 4096) + " 4096"));
    Arrays.fill(expected, DISK_SIZE - 4096, DISK_SIZE, (byte) (pattern + 2));
    command.addAll(List.of("-c", "flush"));
    Tools.run(command, Map.of(), 120).assertSuccess();
  }

  /** The copy as virt-v2v runs it. */
  private static void copy(String from, String to) {
    Tools.run(List.of("nbdcopy", from, to, "--requests=64", "--flush"), Map.of(), 120).assertSuccess();
  }

  /**
   * A server started with virt-v2v's prefix and environment, found ready by its pidfile as
   * virt-v2v finds it, and stopped with SIGTERM as virt-v2v stops it.
   */
  private final class V2vServer implements AutoCloseable {
    private final Path socket;
    private final Path log;
    private final Process process;

    V2vServer(String name, String... filtersAndPlugin) throws Exception {
      socket = dir.resolve(name + ".sock");
      log = dir.resolve(name + ".log");
      Path pidfile = dir.resolve(name + ".pid");
      List<String> line = new ArrayList<>(List.of("--exit-with-parent", "--foreground", "--pidfile", pidfile.toString(),
          "--unix", socket.toString(), "--threads", "16", "-D", "nbdkit.backend.datapath=0"));
      line.addAll(List.of(filtersAndPlugin));
      ProcessBuilder builder = new ProcessBuilder(ProcessIT.jnbd(line.toArray(String[]::new)))
          .redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .redirectError(log.toFile());
      builder.environment().put("LANG", "C");
      process = builder.start();
      for (int i = 0; i < 1200 && !Files.exists(pidfile) && process.isAlive(); i++) {
        Thread.sleep(50);
      }
      if (!Files.exists(pidfile)) {
        close();
        throw new AssertionError("server " + name + " did not write its pidfile: " + Files.readString(log));
      }
      // virt-v2v chmods the socket as soon as the pidfile is there.
      assertThat(socket).as("socket once the pidfile is written").exists();
    }

    String uri(String export) {
      return "nbd+unix:///" + export + "?socket=" + socket;
    }

    @Override
    public void close() throws Exception {
      process.destroy();
      boolean stopped = process.waitFor(60, TimeUnit.SECONDS);
      if (!stopped) {
        process.destroyForcibly().waitFor();
      }
      assertThat(stopped).as("server stops on SIGTERM: " + Files.readString(log)).isTrue();
    }
  }
}
