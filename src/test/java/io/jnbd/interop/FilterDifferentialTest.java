package io.jnbd.interop;

import static io.jnbd.interop.DifferentialTest.JNBD_DIFFERENCES;
import static io.jnbd.interop.DifferentialTest.assertSameExcept;
import static io.jnbd.interop.DifferentialTest.observe;
import static io.jnbd.interop.DifferentialTest.probeJnbd;
import static io.jnbd.interop.DifferentialTest.probeNbdkit;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.PartitionImages;
import io.jnbd.testing.PartitionImages.Expected;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * jnbd's filters against nbdkit 1.32's: the generic probe (probe.py) over each, and requests
 * chosen for each filter (ops.py) whose answers must match, except where a test names and
 * explains a difference.
 */
@Tag("slow")
class FilterDifferentialTest {
  private static Path ops;

  @TempDir Path temp;

  @BeforeAll
  static void toolsInstalled() throws IOException {
    DifferentialTest.toolsInstalled();
    ops = DifferentialTest.script("ops.py");
  }

  /** The answers to {@code requests} (a JSON list, see ops.py) from jnbd and nbdkit serving {@code command}. */
  private static Map<String, Map<String, String>> answers(List<String> command, boolean readOnly, String requests)
      throws Exception {
    return answers(file -> command, readOnly, requests);
  }

  /** As above, with a command per server (for one image file each). */
  private static Map<String, Map<String, String>> answers(Function<String, List<String>> command, boolean readOnly,
      String requests) throws Exception {
    Map<String, String> jnbd;
    try (TestServer server = DifferentialTest.serve(command.apply("jnbd"), ServerConfig.defaults().withReadOnly(readOnly))) {
      jnbd = observe(ops, server.socket().toString(), requests);
    }
    List<String> nbdkitCommand = new ArrayList<>(readOnly ? List.of("-r") : List.of());
    nbdkitCommand.addAll(command.apply("nbdkit"));
    Map<String, String> nbdkit;
    try (Nbdkit server = new Nbdkit(nbdkitCommand)) {
      nbdkit = observe(ops, server.socket().toString(), requests);
    }
    return Map.of("jnbd", jnbd, "nbdkit", nbdkit);
  }

  private static void assertSameAnswers(Map<String, Map<String, String>> answers, Map<String, String> differences) {
    assertSameExcept(answers.get("jnbd"), answers.get("nbdkit"), differences);
  }

  private static void assertSameAnswers(List<String> command, boolean readOnly, String requests) throws Exception {
    assertSameAnswers(answers(command, readOnly, requests), Map.of());
  }

  private static void assertSameProbe(List<String> command, boolean writable, Map<String, String> differences)
      throws Exception {
    Map<String, String> jnbd = probeJnbd(command, ServerConfig.defaults(), writable);
    Map<String, String> nbdkit = probeNbdkit(command, false, writable);
    assertSameExcept(jnbd, nbdkit, differences);
  }

  @Test
  void offset() throws Exception {
    assertSameProbe(List.of("--filter=offset", "memory", "size=4M", "offset=1M", "range=2M"), true, JNBD_DIFFERENCES);
    String requests = """
        [["pread", 16, 0], ["pread", 16, 4984], ["pread", 32, 4984], ["pread", 5000, 0], ["pread", 1, 5000],
         ["pwrite", 10, 4990, 255], ["pread", 16, 4984], ["pwrite", 10, 4995, 255], ["zero", 8, 4992, ""],
         ["pread", 16, 4984], ["trim", 100, 0], ["cache", 100, 4900], ["flush"]]
        """;
    assertSameAnswers(List.of("--filter=offset", "memory", "size=64k", "offset=1000", "range=5000"), false, requests);
    assertSameAnswers(List.of("--filter=offset", "pattern", "size=64k", "offset=4660"), true,
        "[[\"pread\", 16, 0], [\"pread\", 16, 60280], [\"pread\", 16, 60300]]");
    // A range past the end of the plugin refuses every client.
    for (String args : List.of("offset=65537", "offset=32k range=33k")) {
      List<String> command = new ArrayList<>(List.of("--filter=offset", "memory", "size=64k"));
      command.addAll(List.of(args.split(" ")));
      Map<String, Map<String, String>> answers = answers(command, false, "[]");
      assertThat(answers.get("jnbd")).containsOnlyKeys("connect");
      assertSameAnswers(answers, Map.of());
    }
  }

  @Test
  void truncate() throws Exception {
    assertSameProbe(List.of("--filter=truncate", "memory", "size=3M", "truncate=4M"), true, JNBD_DIFFERENCES);
    String straddling = "[\"extents\", 1000, 1048000, \"\"]";
    String requests = """
        [["pwrite", 1000, 0, 97], ["pread", 1024, 1048000], ["pread", 16, 1049000],
         ["pwrite", 100, 1048576, 0], ["pwrite", 100, 1048500, 0], ["pwrite", 100, 1048500, 1],
         ["pwrite", 100, 1048600, 1], ["pwrite_hex", "00000000000000000001", 1049990],
         ["trim", 1000, 1048000], ["zero", 1000, 1048000, ""], ["zero", 1000, 1048000, "FAST_ZERO"],
         ["zero", 1000, 1049000, "FUA"], ["cache", 1000, 1048000], ["pread", 1000, 1048000],
         ["extents", 1000, 1048000, "REQ_ONE"], ["extents", 1000, 1048576, ""], ["extents", 100, 0, ""],
         STRADDLING]
        """.replace("STRADDLING", straddling);
    Map<String, Map<String, String>> answers =
        answers(List.of("--filter=truncate", "memory", "size=1M", "truncate=1050000"), false, requests);
    // Asked about a range that starts in the plugin and ends past it, nbdkit answers for the
    // plugin's part only (as the protocol allows); jnbd answers for all of it, the rest a hole.
    String key = "17 " + straddling;
    assertThat(answers.get("nbdkit")).containsEntry(key, "[[1048000, 576, 3]]");
    assertSameAnswers(answers, Map.of(key, "[[1048000, 1000, 3]]"));
    for (String rounding : List.of("round-up=512", "round-down=512", "round-up=4096 round-down=512 truncate=10",
        "truncate=0", "round-up=2G", "round-down=2G")) {
      List<String> command = new ArrayList<>(List.of("--filter=truncate", "memory", "size=1000001"));
      command.addAll(List.of(rounding.split(" ")));
      assertSameAnswers(command, false, "[]");
    }
  }

  @Test
  void partition() throws Exception {
    record Image(String name, byte[] bytes, Expected[] partitions, int[] missing) {}
    for (Image image : List.of(
        new Image("mbr", PartitionImages.mbr(), PartitionImages.MBR_PARTITIONS, PartitionImages.MBR_MISSING),
        new Image("gpt", PartitionImages.gpt(), PartitionImages.GPT_PARTITIONS, PartitionImages.GPT_MISSING))) {
      Path file = Files.write(temp.resolve(image.name() + ".img"), image.bytes());
      for (Expected partition : image.partitions()) {
        long size = partition.length();
        String requests = "[[\"pread\", 16, 0], [\"pread\", 16, " + (size - 16) + "], [\"pread\", " + size + ", 0],"
            + " [\"pread\", 16, " + size + "]]";
        Map<String, Map<String, String>> answers = answers(List.of("--filter=partition", "file", "file=" + file,
            "partition=" + partition.number()), true, requests);
        assertThat(answers.get("jnbd")).containsEntry("size", Long.toString(size))
            .containsEntry("00 [\"pread\", 16, 0]", "\"" + hex(partition.start()) + hex(partition.start() + 8) + "\"");
        assertSameAnswers(answers, Map.of());
      }
      for (int missing : image.missing()) {
        Map<String, Map<String, String>> answers = answers(List.of("--filter=partition", "file", "file=" + file,
            "partition=" + missing), true, "[]");
        assertThat(answers.get("jnbd")).containsOnlyKeys("connect");
        assertSameAnswers(answers, Map.of());
      }
    }
  }

  @Test
  void partitionWritesLandInThePartition() throws Exception {
    Function<String, List<String>> command = server -> {
      try {
        Path file = Files.write(temp.resolve(server + ".img"), PartitionImages.mbr());
        return List.of("--filter=partition", "file", "file=" + file, "partition=6");
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    };
    String requests = "[[\"pwrite\", 1000, 100, 170], [\"zero\", 512, 4096, \"\"], [\"trim\", 512, 8192], [\"flush\"],"
        + " [\"pread\", 32768, 0]]";
    // jnbd's file plugin zeroes with fallocate and says it is fast; nbdkit 1.32's does not.
    assertSameAnswers(answers(command, false, requests), Map.of("can_fast_zero", "true"));
    assertThat(Files.readAllBytes(temp.resolve("jnbd.img"))).isEqualTo(Files.readAllBytes(temp.resolve("nbdkit.img")));
  }

  @Test
  void protect() throws Exception {
    assertSameProbe(List.of("--filter=protect", "memory", "size=4M", "protect=0x200000-0x2fffff"), true, JNBD_DIFFERENCES);
    // nbdkit 1.32.5 crashes (SIGSEGV) on a zero or trim that starts before a protected range and
    // runs into it, so none is sent here; ProtectFilterTest covers them.
    String requests = """
        [["zero", 10, 1027, ""], ["trim", 10, 1027], ["zero", 10, 1020, ""], ["trim", 10, 1020],
         ["pwrite_hex", "010203", 1024], ["pwrite_hex", "0000010203", 1022], ["pwrite_hex", "0901020300", 1023],
         ["pwrite", 1, 5000, 1], ["pwrite", 1, 4095, 0], ["pwrite", 3, 4095, 0], ["pwrite_hex", "0001", 4095],
         ["pwrite", 1, 4096, 1], ["zero", 100, 4000, "FAST_ZERO"], ["zero", 100, 5000, "FUA"],
         ["pwrite", 1, 999, 1], ["pwrite_hex", "0101", 999], ["pwrite", 1, 65536, 1], ["pwrite", 1, 131071, 1],
         ["pwrite", 1, 131072, 1], ["trim", 65536, 65536], ["zero", 4096, 131072, ""], ["pread", 16, 1020],
         ["pread", 16, 131064]]
        """;
    assertSameAnswers(List.of("--filter=protect", "data", "data=@1024 1 2 3", "size=1M", "protect=1000-4095",
        "protect=0x10000-0x1ffff"), false, requests);
    assertSameAnswers(List.of("--filter=protect", "data", "data=@1024 1 2 3", "size=1M", "protect=~1000-01777"), false,
        "[[\"pwrite\", 1, 999, 1], [\"pwrite\", 1, 1000, 1], [\"pwrite\", 1, 1023, 1], [\"pwrite\", 1, 1024, 1], "
            + "[\"pwrite\", 999, 0, 0]]");
  }

  @Test
  void swab() throws Exception {
    Map<String, String> probeDifferences = new TreeMap<>(JNBD_DIFFERENCES);
    // Both raise the minimum block size to the word; nbdkit's preferred and maximum are its
    // defaults (512 and 4G-1), jnbd's those of the layer below (4096 and 32M).
    probeDifferences.put("block_size", "[4, 4096, 33554432]");
    assertSameProbe(List.of("--filter=swab", "memory", "size=4M", "swab-bits=32"), false, probeDifferences);
    for (int bits : new int[] {8, 16, 32, 64}) {
      assertSameAnswers(List.of("--filter=swab", "pattern", "size=1003", "swab-bits=" + bits), true,
          "[[\"pread\", 32, 0], [\"pread\", 8, 992], [\"pread\", 3, 0], [\"pread\", 2, 2], [\"pread\", 4, 4]]");
    }
    String requests = """
        [["pwrite_hex", "0001020304050607", 8], ["pread", 16, 0], ["pwrite_hex", "0001", 2], ["trim", 3, 0],
         ["trim", 4, 8], ["zero", 3, 0, ""], ["zero", 4, 8, ""], ["cache", 3, 0], ["cache", 4, 4],
         ["extents", 3, 0, ""], ["extents", 100, 0, ""], ["pread", 16, 0]]
        """;
    assertSameAnswers(List.of("--filter=swab", "data", "data=0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", "size=1003",
        "swab-bits=32"), false, requests);
  }

  /**
   * The same client requests through jnbd's and nbdkit's stats filters report the same bytes in
   * total and per operation: extents and cache requests move no bytes.
   */
  @Test
  void statsTotals() throws Exception {
    String script = """
        for i in range(10): h.pread(4096, i * 4096)
        h.pread(512, 1024)
        h.pwrite(b"x" * 65536, 0)
        h.trim(65536, 65536)
        h.zero(4096, 0)
        h.block_status(1 << 20, 0, lambda *a: 0)
        h.cache(1 << 20, 0)
        h.flush()
        """;
    Path jnbdStats = temp.resolve("jnbd.txt");
    Path nbdkitStats = temp.resolve("nbdkit.txt");
    List<String> command = List.of("--filter=stats", "memory", "size=1M");
    try (TestServer server = DifferentialTest.serve(append(command, "statsfile=" + jnbdStats), ServerConfig.defaults())) {
      Tools.run(List.of("nbdsh", "--base-allocation", "-u", server.uri(), "-c", script), Map.of(), 60).assertSuccess();
    }
    try (Nbdkit server = new Nbdkit(append(command, "statsfile=" + nbdkitStats))) {
      Tools.run(List.of("nbdsh", "--base-allocation", "-u", server.uri(), "-c", script), Map.of(), 60).assertSuccess();
    }
    // nbdkit writes its file when it exits, which closing it waits for.
    Map<String, String> nbdkit = amounts(Files.readString(nbdkitStats), "(\\w+): \\d+ ops, [\\d.]+ s, ([\\d.]+ \\w+)");
    Map<String, String> jnbd = amounts(Files.readString(jnbdStats), "(\\w+): \\d+ ops, (?:spanning )?([\\d.]+ \\w+)");
    nbdkit.remove("flush");
    assertThat(nbdkit).containsEntry("total", "172.50 KiB").containsEntry("read", "40.50 KiB").containsKey("extents");
    assertThat(jnbd).containsAllEntriesOf(nbdkit);
  }

  private static Map<String, String> amounts(String report, String line) {
    Map<String, String> amounts = new TreeMap<>();
    Matcher m = Pattern.compile(line).matcher(report);
    while (m.find()) {
      amounts.put(m.group(1), m.group(2));
    }
    return amounts;
  }

  private static List<String> append(List<String> list, String element) {
    List<String> out = new ArrayList<>(list);
    out.add(element);
    return out;
  }

  private static String hex(long word) {
    return String.format("%016x", word);
  }
}
