package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The libnbd probe (probe.py) that differential tests run against jnbd and nbdkit serving the
 * same configuration, and the comparison of what it observed.
 */
final class Probe {
  private static Path script;

  private Probe() {}

  /** Skips the calling test unless nbdkit and python3 with libnbd are installed. */
  static void assumeInstalled() {
    assumeTrue(Tools.installed("nbdkit") && Files.isExecutable(Path.of("/usr/bin/python3")));
    assumeTrue(Tools.run("/usr/bin/python3", "-c", "import nbd").exitCode() == 0, "python3-libnbd");
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
  static Map<String, String> jnbdDifferences() {
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
   * Probes jnbd serving {@code filters} (outermost first) on the plugin, with the key=value
   * arguments routed as the command line routes them.
   */
  static Map<String, String> jnbd(List<String> filters, List<String> pluginAndArgs, ServerConfig config, boolean writable)
      throws IOException {
    List<Filter> layers = filters.stream().map(Catalog::filter).toList();
    Plugin plugin = Catalog.plugin(pluginAndArgs.get(0));
    Stack stack = Stacks.configured(layers, plugin, pluginAndArgs.subList(1, pluginAndArgs.size()).toArray(String[]::new));
    try (TestServer server = new TestServer(stack, config)) {
      return run(server.socket(), writable);
    }
  }

  /** Probes nbdkit run with {@code options}, the filters and the plugin with its arguments. */
  static Map<String, String> nbdkit(List<String> options, List<String> filters, List<String> pluginAndArgs, boolean writable)
      throws Exception {
    List<String> command = new ArrayList<>(options);
    filters.forEach(filter -> command.add("--filter=" + filter));
    command.addAll(pluginAndArgs);
    try (Nbdkit nbdkit = new Nbdkit(command)) {
      return run(nbdkit.socket(), writable);
    }
  }

  static Map<String, String> run(Path socket, boolean writable) {
    String stdout = Tools.run(List.of("/usr/bin/python3", script().toString(), socket.toString(), writable ? "1" : "0"),
        Map.of(), 120).assertSuccess().stdout();
    Map<String, String> observations = new TreeMap<>();
    for (String line : stdout.split("\n")) {
      int eq = line.indexOf('=');
      observations.put(line.substring(0, eq), line.substring(eq + 1));
    }
    return observations;
  }

  private static synchronized Path script() {
    if (script == null) {
      try (InputStream in = Probe.class.getResourceAsStream("probe.py")) {
        script = Files.createTempFile("jnbd-probe", ".py");
        Files.write(script, in.readAllBytes());
        script.toFile().deleteOnExit();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return script;
  }
}
