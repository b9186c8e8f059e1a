package io.jnbd.interop;


import io.jnbd.server.ServerConfig;
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
 * Runs the libnbd probe (probe.py) against jnbd or nbdkit serving the same command line
 * (filters, plugin, key=value arguments), and compares what the two showed a client.
 */
final class Probe {
  private static Path script;

  private Probe() {}

  /** Skips the test unless nbdkit and python3 with libnbd's module are installed. */
  static void assumeAvailable() {
    Tools.require("nbdkit", "python3-libnbd");
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

  /**
   * Probes jnbd in-process with the named filters (outermost first) over the plugin, each
   * key=value routed as the command line routes it.
   */
  static Map<String, String> jnbd(List<String> filterNames, List<String> pluginAndArgs, ServerConfig config,
      boolean writable) throws IOException {
    try (TestServer server = jnbdServer(filterNames, pluginAndArgs, config)) {
      return run(server.socket(), writable);
    }
  }

  /** jnbd in-process with the named filters over the plugin, configured as the command line would. */
  static TestServer jnbdServer(List<String> filterNames, List<String> pluginAndArgs, ServerConfig config) {
    List<String> command = new ArrayList<>();
    filterNames.forEach(filter -> command.add("--filter=" + filter));
    command.addAll(pluginAndArgs);
    return DifferentialTest.serve(command, config);
  }

  /** Probes nbdkit with the same filters and arguments. */
  static Map<String, String> nbdkit(List<String> filterNames, List<String> pluginAndArgs, boolean readOnly,
      boolean writable) throws Exception {
    List<String> command = new ArrayList<>();
    if (readOnly) {
      command.add("-r");
    }
    filterNames.forEach(filter -> command.add("--filter=" + filter));
    command.addAll(pluginAndArgs);
    try (Nbdkit nbdkit = new Nbdkit(command)) {
      return run(nbdkit.socket(), writable);
    }
  }

  /**
   * Probes jnbd, then nbdkit, each serving the filters over a 4 MiB memory disk with the
   * arguments: both must show a client the same, except for the keys in {@code expected}, where
   * jnbd must show the value given there. Returns what jnbd showed.
   */
  static Map<String, String> assertSameOverMemory(List<String> filterNames, List<String> arguments, boolean writable,
      Map<String, String> expected) throws Exception {
    List<String> pluginAndArgs = new ArrayList<>(List.of("memory", "size=4M"));
    pluginAndArgs.addAll(arguments);
    Map<String, String> jnbd = jnbd(filterNames, pluginAndArgs, ServerConfig.defaults(), writable);
    assertSameExcept(jnbd, nbdkit(filterNames, pluginAndArgs, false, writable), expected);
    return jnbd;
  }

  /** Where jnbd answers differently from nbdkit whatever the filters, as a map to add to. */
  static Map<String, String> jnbdDifferences() {
    return new TreeMap<>(DifferentialTest.JNBD_DIFFERENCES);
  }

  /**
   * Asserts that jnbd saw what nbdkit saw, except for the keys in {@code expected}, where jnbd
   * must have seen the value given there.
   */
  static void assertSameExcept(Map<String, String> jnbd, Map<String, String> nbdkit, Map<String, String> expected) {
    DifferentialTest.assertSameExcept(jnbd, nbdkit, expected);
  }


  private static Map<String, String> run(Path socket, boolean writable) {
    String stdout = Tools.run(List.of("/usr/bin/python3", script().toString(), socket.toString(), writable ? "1" : "0"),
        Map.of(), 120).assertSuccess().stdout();
    Map<String, String> observations = new TreeMap<>();
    for (String line : stdout.split("\n")) {
      int eq = line.indexOf('=');
      observations.put(line.substring(0, eq), line.substring(eq + 1));
    }
    return observations;
  }
}
