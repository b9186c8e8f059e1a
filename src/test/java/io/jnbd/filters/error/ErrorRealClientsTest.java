package io.jnbd.filters.error;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real clients meeting injected errors. */
@Tag("slow")
class ErrorRealClientsTest {
  @TempDir Path dir;

  private static TestServer serve(ErrorFilter filter, String... config) {
    for (String keyValue : config) {
      String[] parts = keyValue.split("=", 2);
      filter.config(parts[0], parts[1]);
    }
    return new TestServer(List.of(filter), new ArrayDisk(1 << 20), ServerConfig.defaults());
  }

  @Test
  void nbdcopyIntoAnExportWhoseWritesFailReportsTheInjectedError() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[1 << 20];
    java.util.Arrays.fill(image, (byte) 1);
    Path in = Files.write(dir.resolve("in.img"), image);
    try (TestServer server = serve(new ErrorFilter(), "error=ENOSPC", "error-pwrite-rate=100%", "error-zero-rate=100%")) {
      Tools.Result copy = Tools.run("nbdcopy", in.toString(), server.uri());
      assertThat(copy.exitCode()).isNotZero();
      assertThat(copy.stderr()).contains("No space left on device");
      Tools.run("nbdcopy", server.uri(), dir.resolve("out.img").toString()).assertSuccess();
    }
  }

  @Test
  void aQuarterOfReadsFailForNbdsh() throws Exception {
    Tools.require("nbdsh");
    double[] draws = {0.1, 0.6, 0.3, 0.2, 0.9, 0.24, 0.5, 0.7};
    int[] next = {0};
    ErrorFilter filter = new ErrorFilter(() -> draws[next[0]++ % draws.length]);
    try (TestServer server = serve(filter, "error-pread-rate=25%", "error-pread=EPERM")) {
      String out = Tools.run(List.of("nbdsh", "-u", server.uri(), "-c", """
          import errno
          seen = []
          for i in range(8):
              try:
                  h.pread(512, 0)
                  seen.append("ok")
              except nbd.Error as e:
                  seen.append(errno.errorcode[e.errnum])
          print(" ".join(seen))
          """), Map.of(), 60).assertSuccess().stdout().trim();
      assertThat(out).isEqualTo("EPERM ok ok EPERM ok EPERM ok ok");
    }
  }
}
