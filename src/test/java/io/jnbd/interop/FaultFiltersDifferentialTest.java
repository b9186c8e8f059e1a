package io.jnbd.interop;

import io.jnbd.server.ServerConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The retry, retry-request and error filters against nbdkit's, through the libnbd probe: the
 * same command line must show a client the same capabilities, data and errors.
 */
@Tag("slow")
class FaultFiltersDifferentialTest {
  private static final List<String> MEMORY = List.of("memory", "size=4M");
  @TempDir Path temp;

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeAvailable();
  }

  private static void assertSame(List<String> filters, List<String> args, boolean writable, Map<String, String> expected)
      throws Exception {
    List<String> pluginAndArgs = new ArrayList<>(MEMORY);
    pluginAndArgs.addAll(args);
    Map<String, String> jnbd = Probe.jnbd(filters, pluginAndArgs, ServerConfig.defaults(), writable);
    Map<String, String> nbdkit = Probe.nbdkit(filters, pluginAndArgs, false, writable);
    Probe.assertSameExcept(jnbd, nbdkit, expected);
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
}
