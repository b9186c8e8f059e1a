package io.jnbd.plugins.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What the http plugin logs with every logger at debug (what --verbose does): no secrets, the
 * retries it made, and a changed image once. Runs in a fresh JVM, because logging levels are
 * fixed when loggers are created.
 */
class DebugLoggingTest {
  private static String output;

  /** The child JVM: reads with a cookie, a password and a secret header, through faults and a change. */
  public static void main(String[] args) throws Exception {
    try (RangeOrigin origin = RangeOrigin.http(new byte[4096])) {
      origin.change(new byte[4096], "\"v1\"", null);
      HttpPlugin plugin = new HttpPlugin();
      plugin.config("url", origin.url() + "?token=q-SECRET");
      plugin.config("cookie", "c-SECRET");
      plugin.config("user", "u");
      plugin.config("password", "pw-SECRET");
      plugin.config("header", "X-Key: h-SECRET");
      plugin.configComplete();
      Export export = plugin.open(true, "");
      export.pread(ByteBuffer.allocate(100), 0);
      origin.failNext(RangeOrigin.Fault.STATUS_500, 1);
      readExpectingFailure(plugin.open(true, ""), "500");
      origin.failNext(RangeOrigin.Fault.STATUS_503, 1);
      export.pread(ByteBuffer.allocate(100), 0);
      origin.change(new byte[4096], "\"v2\"", null);
      readExpectingFailure(export, "change 1");
      readExpectingFailure(plugin.open(true, ""), "change 2");
      plugin.unload();
    }
    System.exit(0);
  }

  private static void readExpectingFailure(Export export, String what) {
    try {
      export.pread(ByteBuffer.allocate(100), 0);
    } catch (IOException expected) {
      System.err.println("read failed as arranged: " + what);
    }
  }

  @BeforeAll
  static void runChild() {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Tools.Result result = Tools.run(List.of(java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=debug",
        "-cp", System.getProperty("java.class.path"), DebugLoggingTest.class.getName()), Map.of(), 60).assertSuccess();
    output = result.stdout() + result.stderr();
  }

  @Test
  void debugLoggingShowsNoSecrets() {
    assertThat(output).contains("read failed as arranged: 500", "HTTP 500", "token=***");
    assertThat(output).doesNotContain("SECRET").doesNotContain("Authorization");
  }

  @Test
  void retriesAreLoggedWithTheUrlRedacted() {
    assertThat(output.lines().filter(line -> line.contains("DEBUG") && line.contains("HTTP 503")))
        .singleElement().asString().contains("retry", "token=***");
  }

  @Test
  void aChangedImageIsReportedOnceAtWarning() {
    assertThat(output).contains("read failed as arranged: change 1", "read failed as arranged: change 2");
    assertThat(output.lines().filter(line -> line.contains("changed since it was opened")))
        .singleElement().asString().contains("WARN", "\"v1\"", "\"v2\"", "token=***");
  }
}
