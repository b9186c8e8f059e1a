package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

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
 * The retry, retry-request, error and delay filters against nbdkit's, through the libnbd probe:
 * the same command line must show a client the same capabilities, data and errors.
 */
@Tag("slow")
class FaultFiltersDifferentialTest {
  @TempDir Path temp;

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeAvailable();
  }

  @Test
  void retryFiltersWithoutFailuresChangeNothing() throws Exception {
    Probe.assertSameOverMemory(List.of("retry"), List.of(), true, DifferentialTest.JNBD_DIFFERENCES);
    Probe.assertSameOverMemory(List.of("retry-request"), List.of(), true, DifferentialTest.JNBD_DIFFERENCES);
  }

  @Test
  void errorFilterFailingEveryOperation() throws Exception {
    Probe.assertSameOverMemory(List.of("error"), List.of("error=ENOSPC", "error-pread=EPERM", "error-rate=100%"), false,
        DifferentialTest.JNBD_DIFFERENCES);
  }

  @Test
  void errorFilterFailingOnlyBlockStatusWhileItsFileExists() throws Exception {
    Path present = Files.createFile(temp.resolve("inject"));
    Probe.assertSameOverMemory(List.of("error"), List.of("error-rate=1", "error-file=" + temp.resolve("absent"),
        "error-extents-file=" + present, "error-extents=EINVAL"), true, DifferentialTest.JNBD_DIFFERENCES);
  }

  @Test
  void delayFilterFailsADelayedFastZeroAsNbdkitDoes() throws Exception {
    Map<String, String> expected = new TreeMap<>(DifferentialTest.JNBD_DIFFERENCES);
    List<String> args = List.of("rdelay=1ms", "wdelay=1ms", "delay-fast-zero=false", "delay-open=1ms", "delay-close=1ms");
    Map<String, String> jnbd = Probe.assertSameOverMemory(List.of("delay"), args, true, expected);
    assertThat(jnbd).containsEntry("zero_fast", "\"error:ENOTSUP\"");
  }
}
