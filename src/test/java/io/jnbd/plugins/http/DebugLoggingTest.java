package io.jnbd.plugins.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * With every logger at debug (what --verbose does), reading with secrets configured prints none
 * of them. Runs in a fresh JVM, because logging levels are fixed when loggers are created.
 */
class DebugLoggingTest {
  /** The child JVM: reads once with a cookie, a password and a secret header. */
  public static void main(String[] args) throws Exception {
    try (RangeOrigin origin = RangeOrigin.http(new byte[4096])) {
      HttpPlugin plugin = new HttpPlugin();
      plugin.config("url", origin.url() + "?token=q-SECRET");
      plugin.config("cookie", "c-SECRET");
      plugin.config("user", "u");
      plugin.config("password", "pw-SECRET");
      plugin.config("header", "X-Key: h-SECRET");
      plugin.configComplete();
      plugin.open(true, "").pread(ByteBuffer.allocate(100), 0);
      origin.failNext(RangeOrigin.Fault.STATUS_500, 1);
      try {
        plugin.open(true, "").pread(ByteBuffer.allocate(100), 0);
      } catch (java.io.IOException expected) {
        System.err.println("read failed as arranged");
      }
      plugin.unload();
    }
    System.exit(0);
  }

  @Test
  void debugLoggingShowsNoSecrets() {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Tools.Result result = Tools.run(List.of(java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=debug",
        "-cp", System.getProperty("java.class.path"), DebugLoggingTest.class.getName()), Map.of(), 60).assertSuccess();
    String output = result.stdout() + result.stderr();
    assertThat(output).contains("read failed as arranged", "HTTP 500", "token=***");
    assertThat(output).doesNotContain("SECRET").doesNotContain("Authorization");
  }
}
