package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Filter;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The same libnbd probe (probe.py) against jnbd and nbdkit serving the same plugin configuration:
 * what a client can observe must match, except for the differences listed in {@link #EXPECTED},
 * each asserted for jnbd and explained there.
 */
@Tag("slow")
class DifferentialTest {
  private static final String SIZE = "4M";
  private static Path probe;

  private static final Pattern EXPORT_NAME = Pattern.compile("\"export-name\": \"([^\"]*)\"");
  @TempDir Path temp;

  @BeforeAll
  static void toolsInstalled() throws IOException {
    Tools.require("nbdkit", "python3-libnbd");
    probe = script("probe.py");
  }

  /** A Python script of this package's test resources, in a temporary file. */
  static Path script(String name) throws IOException {
    Path file = Files.createTempFile("jnbd-", "-" + name);
    try (InputStream in = DifferentialTest.class.getResourceAsStream(name)) {
      Files.write(file, in.readAllBytes());
    }
    file.toFile().deleteOnExit();
    return file;
  }

  @Test
  void memoryPlugin() throws Exception {
    Map<String, String> jnbd = probeJnbd(List.of("memory", "size=" + SIZE), ServerConfig.defaults(), true);
    Map<String, String> nbdkit = probeNbdkit(List.of("memory", "size=" + SIZE), false, true);
    assertSameExcept(jnbd, nbdkit, JNBD_DIFFERENCES);
  }

  @Test
  void memoryPluginReadOnly() throws Exception {
    Map<String, String> jnbd = probeJnbd(List.of("memory", "size=" + SIZE), ServerConfig.defaults().withReadOnly(true), false);
    Map<String, String> nbdkit = probeNbdkit(List.of("memory", "size=" + SIZE), true, false);
    assertThat(jnbd).containsEntry("read_only", "true").containsEntry("pwrite_fua", "\"error:EPERM\"");
    Map<String, String> expected = new TreeMap<>(JNBD_DIFFERENCES);
    // Read-only refuses every write, whatever its length, with EPERM, as nbdkit does.
    expected.keySet().removeIf(key -> key.matches("(simple_)?(pwrite|trim|zero)_zero_length"));
    // Except that a request with unknown flags is malformed, which the protocol answers with
    // EINVAL before anything else; nbdkit checks read-only first.
    expected.put("pwrite_unknown_flag", "\"error:EINVAL\"");
    expected.put("simple_pwrite_unknown_flag", "\"error:EINVAL\"");
    assertSameExcept(jnbd, nbdkit, expected);
  }

  @Test
  void filePlugin() throws Exception {
    Path jnbdFile = Files.write(temp.resolve("jnbd.img"), new byte[4 << 20]);
    Path nbdkitFile = Files.write(temp.resolve("nbdkit.img"), new byte[4 << 20]);
    Map<String, String> jnbd = probeJnbd(List.of("file", "file=" + jnbdFile), ServerConfig.defaults(), true);
    Map<String, String> nbdkit = probeNbdkit(List.of("file", "file=" + nbdkitFile), false, true);
    Map<String, String> expected = new TreeMap<>(JNBD_DIFFERENCES);
    // jnbd's file plugin zeroes with fallocate, which is fast, so it advertises FAST_ZERO;
    // nbdkit 1.32's file plugin does not (and the probe then skips sending it).
    for (String prefix : List.of("", "simple_")) {
      expected.put(prefix + "can_fast_zero", "true");
      expected.put(prefix + "zero_fast", "\"ok\"");
    }
    assertSameExcept(jnbd, nbdkit, expected);
  }

  /**
   * dir= mode as a client sees it, jnbd against nbdkit: the same exports listed (regular files
   * and links to them; not a subdirectory, a FIFO or a dangling link), the default export and a
   * path refused, and each file served whole.
   */
  @Test
  void filePluginDirectoryMode() throws Exception {
    Tools.require("nbdinfo", "nbdcopy");
    Path disks = Files.createDirectory(temp.resolve("disks"));
    byte[] disk1 = new byte[3 << 20];
    new Random(5).nextBytes(disk1);
    Files.write(disks.resolve("disk0"), new byte[1 << 20]);
    Files.write(disks.resolve("disk1"), disk1);
    Files.write(disks.resolve(".hidden"), new byte[512]);
    Files.createDirectory(disks.resolve("sub"));
    Files.createSymbolicLink(disks.resolve("link1"), Path.of("disk1"));
    Files.createSymbolicLink(disks.resolve("dangling"), Path.of("/nonexistent"));
    Tools.run("mkfifo", disks.resolve("fifo").toString()).assertSuccess();
    List<String> command = List.of("file", "dir=" + disks);
    try (TestServer jnbd = serve(command, ServerConfig.defaults()); Nbdkit nbdkit = new Nbdkit(command)) {
      String jnbdSeen = observeDirectory("jnbd", jnbd.socket(), disk1);
      assertThat(jnbdSeen).isEqualTo(observeDirectory("nbdkit", nbdkit.socket(), disk1))
          .isEqualTo("exports [.hidden, disk0, disk1, link1]; default refused; path refused; link1 served whole");
    }
  }

  private String observeDirectory(String server, Path socket, byte[] disk1) throws IOException {
    String listing = Tools.run("nbdinfo", "--list", "--json", "nbd+unix:///?socket=" + socket).assertSuccess().stdout();
    // nbdkit lists in directory order, jnbd by name.
    List<String> names = EXPORT_NAME.matcher(listing).results().map(match -> match.group(1)).sorted().toList();
    boolean defaultRefused = Tools.run("nbdinfo", "nbd+unix:///?socket=" + socket).exitCode() != 0;
    boolean pathRefused = Tools.run("nbdinfo", "nbd+unix:///sub%2F..%2Fdisk0?socket=" + socket).exitCode() != 0;
    Path copy = temp.resolve(server + "-copy.img");
    Tools.run("nbdcopy", "nbd+unix:///link1?socket=" + socket, copy.toString()).assertSuccess();
    boolean whole = Arrays.equals(Files.readAllBytes(copy), disk1);
    return "exports " + names + "; default " + (defaultRefused ? "refused" : "served") + "; path "
        + (pathRefused ? "refused" : "served") + "; link1 " + (whole ? "served whole" : "served wrong");
  }

  /**
   * The cow filter over a sparse writable plugin and over a read-only one. Where jnbd differs:
   * <ul>
   *   <li>nbdkit 1.32's cow does not advertise WRITE_ZEROES (it asks the plugin, opened read-only,
   *       which has none), so clients write buffers of zeroes; jnbd's zeroes go into the overlay
   *       without data on the wire. The probe writes zeroes where it cannot send WRITE_ZEROES, so
   *       the only mark in the data is block 10, zeroed without NO_HOLE: a hole in jnbd's
   *       overlay, written zeroes (data) in nbdkit's. Block 12, zeroed with NO_HOLE, is data in both.
   *   <li>block_size: both prefer the cow block size (64K); nbdkit's maximum is its "no limit"
   *       (4 GiB - 1), jnbd's stays that of the layer below (32 MiB by default).
   * </ul>
   */
  @ParameterizedTest
  @ValueSource(strings = {"memory", "pattern"})
  void cowFilter(String plugin) throws Exception {
    List<String> command = List.of("--filter=cow", plugin, "size=" + SIZE);
    Map<String, String> jnbd = probeJnbd(command, ServerConfig.defaults(), true);
    Map<String, String> nbdkit = probeNbdkit(command, false, true);
    Map<String, String> expected = new TreeMap<>(JNBD_DIFFERENCES);
    expected.put("block_size", "[1, 65536, 33554432]");
    for (String prefix : List.of("", "simple_")) {
      expected.put(prefix + "can_zero", "true");
      expected.put(prefix + "zero_fua", "\"ok\"");
      expected.put(prefix + "zero_no_hole", "\"ok\"");
    }
    // Block 8 trimmed, block 10 zeroed: holes over what the plugin reports for the rest.
    expected.put("extents", plugin.equals("memory")
        ? "[[\"base:allocation\", [65536, 3, 131072, 0, 131072, 3, 65536, 0, 393216, 3, 65536, 0, 196608, 3]]]"
        : "[[\"base:allocation\", [524288, 0, 65536, 3, 65536, 0, 65536, 3, 327680, 0]]]");
    assertSameExcept(jnbd, nbdkit, expected);
  }

  /** Filters, with their parameters, that must look exactly like nbdkit's over the memory plugin. */
  @ParameterizedTest
  @ValueSource(strings = {"cacheextents", "noextents",
      "nozero", "nozero zeromode=emulate", "nozero zeromode=notrim", "nozero zeromode=plugin fastzeromode=slow",
      "nozero zeromode=plugin fastzeromode=ignore", "nozero zeromode=plugin fastzeromode=none", "nozero zeromode=emulate fastzeromode=none",
      "nocache", "nocache cachemode=emulate", "nocache cachemode=nop",
      "fua", "fua fuamode=emulate", "fua fuamode=native", "fua fuamode=force", "fua fuamode=pass", "fua fuamode=discard"})
  void filterOverMemory(String filterAndArgs) throws Exception {
    String[] words = filterAndArgs.split(" ");
    List<String> command = new ArrayList<>(List.of("--filter=" + words[0], "memory", "size=" + SIZE));
    command.addAll(List.of(words).subList(1, words.length));
    assertSameExcept(probeJnbd(command, ServerConfig.defaults(), true), probeNbdkit(command, false, true),
        filterDifferences(filterAndArgs));
  }

  /** Where a filter configuration shows a general difference that the plain plugins do not. */
  private static Map<String, String> filterDifferences(String filterAndArgs) {
    Map<String, String> expected = new TreeMap<>(JNBD_DIFFERENCES);
    if (filterAndArgs.equals("nozero")) {
      // WRITE_ZEROES not advertised: jnbd refuses the command as unsupported before looking at
      // its range; nbdkit checks the range first and answers ENOSPC.
      for (String prefix : List.of("", "simple_")) {
        expected.put(prefix + "zero_past_end", "\"error:EINVAL\"");
        expected.put(prefix + "zero_zero_length", "\"error:EINVAL\"");
      }
    }
    if (filterAndArgs.equals("nozero") || filterAndArgs.startsWith("nozero zeromode=emulate")) {
      // Zeroes written as data over data (blocks 10 and 12, by the probe or the filter): nbdkit's
      // memory plugin reports allocated pages of zeroes as zero (type 2), jnbd's as data (type 0).
      expected.put("extents",
          "[[\"base:allocation\", [65536, 3, 131072, 0, 131072, 3, 65536, 0, 262144, 3, 65536, 0, 65536, 3, 65536, 0, 196608, 3]]]");
    }
    if (filterAndArgs.equals("nocache")) {
      // NBD_CMD_CACHE not advertised: jnbd ignores the hint a client sends anyway, nbdkit refuses it.
      expected.put("cache", "\"ok\"");
      expected.put("simple_cache", "\"ok\"");
    }
    return expected;
  }

  /**
   * Where jnbd deliberately answers differently from nbdkit 1.32, and what jnbd answers.
   * <ul>
   *   <li>block_size: jnbd always sends NBD_INFO_BLOCK_SIZE (as qemu-nbd does), nbdkit only for
   *       plugins with a block_size callback; the defaults (1, 4096, 32 MiB) are what the protocol
   *       assumes when nothing is sent.
   *   <li>zero-length READ, WRITE, TRIM, WRITE_ZEROES and CACHE: the protocol leaves them
   *       unspecified and asks servers not to disconnect; jnbd replies success (a structured READ
   *       with no content chunk), as qemu-nbd does, while nbdkit replies EINVAL or ENOSPC.
   * </ul>
   */
  static final Map<String, String> JNBD_DIFFERENCES = zeroLengthAndBlockSize();

  private static Map<String, String> zeroLengthAndBlockSize() {
    Map<String, String> expected = new TreeMap<>();
    expected.put("block_size", "[1, 4096, 33554432]");
    for (String prefix : List.of("", "simple_")) {
      expected.put(prefix + "pread_zero_length", "\"\"");
      for (String command : List.of("pwrite", "trim", "zero", "cache")) {
        expected.put(prefix + command + "_zero_length", "\"ok\"");
      }
    }
    return expected;
  }

  static void assertSameExcept(Map<String, String> jnbd, Map<String, String> nbdkit, Map<String, String> expected) {
    assertThat(jnbd).as("jnbd observations").isNotEmpty();
    List<String> differences = new ArrayList<>();
    TreeMap<String, String> all = new TreeMap<>(nbdkit);
    all.putAll(jnbd);
    for (String key : all.keySet()) {
      String ours = jnbd.getOrDefault(key, "<absent>");
      String want = expected.containsKey(key) ? expected.get(key) : nbdkit.getOrDefault(key, "<absent>");
      if (!ours.equals(want)) {
        differences.add(key + ": jnbd " + ours + ", expected " + want + " (nbdkit " + nbdkit.getOrDefault(key, "<absent>") + ")");
      }
    }
    assertThat(differences).as("observations that differ").isEmpty();
  }

  /**
   * Probes jnbd serving {@code command}, written as for nbdkit: {@code --filter=NAME}s, then the
   * plugin and its and the filters' key=value arguments.
   */
  static Map<String, String> probeJnbd(List<String> command, ServerConfig config, boolean writable)
      throws IOException {
    try (TestServer server = serve(command, config)) {
      return runProbe(server.socket(), writable);
    }
  }

  /** jnbd serving {@code command}, written as for nbdkit (filters, plugin, key=value...). */
  static TestServer serve(List<String> command, ServerConfig config) {
    List<Filter> filters = new ArrayList<>();
    int at = 0;
    for (; command.get(at).startsWith("--filter="); at++) {
      filters.add(Catalog.filter(command.get(at).substring("--filter=".length())));
    }
    Stack routing = new Stack(filters, Catalog.plugin(command.get(at)));
    for (String arg : command.subList(at + 1, command.size())) {
      int eq = arg.indexOf('=');
      routing.config(arg.substring(0, eq), arg.substring(eq + 1));
    }
    return new TestServer(filters, routing.plugin(), config);
  }

  static Map<String, String> probeNbdkit(List<String> pluginAndArgs, boolean readOnly, boolean writable)
      throws Exception {
    List<String> command = new ArrayList<>();
    if (readOnly) {
      command.add("-r");
    }
    command.addAll(pluginAndArgs);
    try (Nbdkit nbdkit = new Nbdkit(command)) {
      return runProbe(nbdkit.socket(), writable);
    }
  }

  private static Map<String, String> runProbe(Path socket, boolean writable) {
    return observe(probe, socket.toString(), writable ? "1" : "0");
  }

  /** Runs a probe script with python3-libnbd and parses its KEY=JSON lines. */
  static Map<String, String> observe(Path script, String... args) {
    List<String> command = new ArrayList<>(List.of("/usr/bin/python3", script.toString()));
    command.addAll(List.of(args));
    String stdout = Tools.run(command, Map.of(), 120).assertSuccess().stdout();
    Map<String, String> observations = new TreeMap<>();
    for (String line : stdout.split("\n")) {
      int eq = line.indexOf('=');
      observations.put(line.substring(0, eq), line.substring(eq + 1));
    }
    return observations;
  }
}
