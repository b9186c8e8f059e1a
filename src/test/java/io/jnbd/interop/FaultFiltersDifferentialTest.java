package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The retry, retry-request, error and delay filters against nbdkit's, through the libnbd probe:
 * the same command line must show a client the same capabilities, data and errors.
 */
@Tag("slow")
class FaultFiltersDifferentialTest {
  private static final List<String> MEMORY = List.of("memory", "size=4M");
  @TempDir Path temp;

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeAvailable();
  }

  /** Probes both with the same filters over the memory plugin; returns what jnbd showed. */
  private static Map<String, String> assertSame(List<String> filters, List<String> args, boolean writable, Map<String, String> expected)
      throws Exception {
    List<String> pluginAndArgs = new ArrayList<>(MEMORY);
    pluginAndArgs.addAll(args);
    Map<String, String> jnbd = Probe.jnbd(filters, pluginAndArgs, ServerConfig.defaults(), writable);
    Map<String, String> nbdkit = Probe.nbdkit(filters, pluginAndArgs, false, writable);
    Probe.assertSameExcept(jnbd, nbdkit, expected);
    return jnbd;
  }

  @Test
  void retryFiltersWithoutFailuresChangeNothing() throws Exception {
    assertSame(List.of("retry"), List.of(), true, DifferentialTest.JNBD_DIFFERENCES);
    assertSame(List.of("retry-request"), List.of(), true, DifferentialTest.JNBD_DIFFERENCES);
  }

  @Test
  void errorFilterFailingEveryOperation() throws Exception {
    assertSame(List.of("error"), List.of("error=ENOSPC", "error-pread=EPERM", "error-rate=100%"), false,
        DifferentialTest.JNBD_DIFFERENCES);
  }

  @Test
  void errorFilterFailingOnlyBlockStatusWhileItsFileExists() throws Exception {
    Path present = Files.createFile(temp.resolve("inject"));
    assertSame(List.of("error"), List.of("error-rate=1", "error-file=" + temp.resolve("absent"),
        "error-extents-file=" + present, "error-extents=EINVAL"), true, DifferentialTest.JNBD_DIFFERENCES);
  }

  @Test
  void delayFilterFailsADelayedFastZeroAsNbdkitDoes() throws Exception {
    Map<String, String> expected = new TreeMap<>(DifferentialTest.JNBD_DIFFERENCES);
    List<String> args = List.of("rdelay=1ms", "wdelay=1ms", "delay-fast-zero=false", "delay-open=1ms", "delay-close=1ms");
    Map<String, String> jnbd = assertSame(List.of("delay"), args, true, expected);
    assertThat(jnbd).containsEntry("zero_fast", "\"error:ENOTSUP\"");
  }
}
