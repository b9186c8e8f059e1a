package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Filters compared with nbdkit 1.32's filters of the same name, over the memory plugin: the probe
 * (probe.py) must observe the same from both, except what {@link Probe#jnbdDifferences} and each
 * test list.
 */
@Tag("slow")
class FilterDifferentialTest {
  private static final List<String> MEMORY = List.of("memory", "size=4M");

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeInstalled();
  }

  private static Map<String, String> compare(List<String> filters, List<String> arguments, Map<String, String> expected)
      throws Exception {
    List<String> pluginAndArgs = new ArrayList<>(MEMORY);
    pluginAndArgs.addAll(arguments);
    Map<String, String> jnbd = Probe.jnbd(filters, pluginAndArgs, ServerConfig.defaults(), true);
    Map<String, String> nbdkit = Probe.nbdkit(List.of(), filters, pluginAndArgs, true);
    Probe.assertSameExcept(jnbd, nbdkit, expected);
    return jnbd;
  }

  @Test
  void blocksize() throws Exception {
    Map<String, String> expected = Probe.jnbdDifferences();
    // Both advertise that any request is accepted, so nbdkit sends block sizes too.
    expected.remove("block_size");
    Map<String, String> jnbd = compare(List.of("blocksize"), List.of("minblock=4096", "maxdata=64k", "maxlen=128k"), expected);
    assertThat(jnbd).containsEntry("block_size", "[1, 4096, 4294967295]")
        .containsEntry("unaligned_write_readback", "\"000102030405066162630a0b0c0d0e0f\"");
  }

  @Test
  void multiConn() throws Exception {
    compare(List.of("multi-conn"), List.of(), Probe.jnbdDifferences());
    Map<String, String> disabled = compare(List.of("multi-conn"), List.of("multi-conn-mode=disable"), Probe.jnbdDifferences());
    assertThat(disabled).containsEntry("can_multi_conn", "false");
  }

  /** Only the pace of reads and writes may change, never what a client sees. */
  @Test
  void rate() throws Exception {
    compare(List.of("rate"), List.of("rate=10G", "connection-rate=8G"), Probe.jnbdDifferences());
  }

  @Test
  void noparallel() throws Exception {
    compare(List.of("noparallel"), List.of(), Probe.jnbdDifferences());
    Map<String, String> connections = compare(List.of("noparallel"), List.of("serialize=connections"), Probe.jnbdDifferences());
    assertThat(connections).containsEntry("can_multi_conn", "false");
  }
}
