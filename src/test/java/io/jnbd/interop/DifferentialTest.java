package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The same libnbd probe (probe.py) against jnbd and nbdkit serving the same plugin configuration:
 * what a client can observe must match, except for the differences listed in {@link
 * Probe#jnbdDifferences}, each asserted for jnbd and explained there, and those of each test.
 */
@Tag("slow")
class DifferentialTest {
  private static final String SIZE = "4M";

  @TempDir Path temp;

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeInstalled();
  }

  @Test
  void memoryPlugin() throws Exception {
    Map<String, String> jnbd = probeJnbd(List.of("memory", "size=" + SIZE), ServerConfig.defaults(), true);
    Map<String, String> nbdkit = probeNbdkit(List.of("memory", "size=" + SIZE), false, true);
    Probe.assertSameExcept(jnbd, nbdkit, JNBD_DIFFERENCES);
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
    Probe.assertSameExcept(jnbd, nbdkit, expected);
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
    Probe.assertSameExcept(jnbd, nbdkit, expected);
  }

  private static final Map<String, String> JNBD_DIFFERENCES = Probe.jnbdDifferences();

  private static Map<String, String> probeJnbd(List<String> pluginAndArgs, ServerConfig config, boolean writable)
      throws IOException {
    return Probe.jnbd(List.of(), pluginAndArgs, config, writable);
  }

  private static Map<String, String> probeNbdkit(List<String> pluginAndArgs, boolean readOnly, boolean writable)
      throws Exception {
    return Probe.nbdkit(readOnly ? List.of("-r") : List.of(), List.of(), pluginAndArgs, writable);
  }
}
