package io.jnbd.filters.retry;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.filters.error.ErrorFilter;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.RecordingSleeper;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real clients through the retry filters over disks that keep failing. */
@Tag("slow")
class RetryRealClientsTest {
  private static final int SIZE = 4 << 20;
  @TempDir Path dir;
  private final RecordingSleeper sleeper = new RecordingSleeper();

  private TestServer serve(FlakyDisk flaky, String... config) {
    Filter retry = new RetryFilter(sleeper);
    for (String keyValue : config) {
      String[] parts = keyValue.split("=", 2);
      retry.config(parts[0], parts[1]);
    }
    return new TestServer(List.of(retry), flaky, ServerConfig.defaults());
  }

  @Test
  void nbdcopyReadsAnImageWhoseExportsBreakEveryFewRequests() throws Exception {
    Tools.require("nbdcopy");
    FlakyDisk flaky = new FlakyDisk(SIZE);
    new Random(11).nextBytes(flaky.disk.data);
    flaky.breakAfter = 5;
    Path out = dir.resolve("copy.img");
    try (TestServer server = serve(flaky)) {
      Tools.run("nbdcopy", "--request-size=65536", server.uri(), out.toString()).assertSuccess();
    }
    assertThat(Files.readAllBytes(out)).isEqualTo(flaky.disk.data);
    assertThat(flaky.failures.get()).isPositive();
    assertThat(flaky.opens.get()).isGreaterThan(SIZE / 65536 / 5);
    assertThat(sleeper.waits).isNotEmpty();
  }

  @Test
  void nbdcopyWritesAnImageWhoseExportsBreakEveryFewRequests() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[SIZE];
    new Random(12).nextBytes(image);
    Path in = Files.write(dir.resolve("in.img"), image);
    FlakyDisk flaky = new FlakyDisk(SIZE);
    flaky.breakAfter = 5;
    try (TestServer server = serve(flaky)) {
      Tools.run("nbdcopy", "--request-size=65536", "--flush", in.toString(), server.uri()).assertSuccess();
    }
    assertThat(flaky.disk.data).isEqualTo(image);
    assertThat(flaky.failures.get()).isPositive();
  }

  @Test
  void nbdcopyReadsThroughTheHttpPluginAcrossOriginFailures() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[SIZE];
    new Random(13).nextBytes(image);
    Path out = dir.resolve("http-copy.img");
    try (RangeOrigin origin = RangeOrigin.http(image)) {
      Plugin http = Catalog.plugin("curl");
      http.config("url", origin.url());
      try (TestServer server = new TestServer(List.of(new RetryFilter(sleeper)), http, ServerConfig.defaults())) {
        // The size probe happens at the first open: let it pass before the faults are armed.
        http.open(true, "").close();
        origin.failNext(RangeOrigin.Fault.STATUS_503, 2);
        origin.failNext(RangeOrigin.Fault.RESET_MID_BODY, 2);
        origin.failNext(RangeOrigin.Fault.SHORT_BODY, 1);
        Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
      }
    }
    assertThat(Files.readAllBytes(out)).isEqualTo(image);
    assertThat(sleeper.waits).isNotEmpty();
  }

  @Test
  void nbdshGetsTheErrorOnceTheRetriesAreSpentAndTheConnectionGoesOn() throws Exception {
    Tools.require("nbdsh");
    FlakyDisk flaky = new FlakyDisk(SIZE);
    flaky.disk.data[0] = 42;
    flaky.failCalls(3);
    try (TestServer server = serve(flaky, "retries=2")) {
      Tools.run(List.of("nbdsh", "-u", server.uri(), "-c", """
          import errno
          try:
              h.pread(512, 0)
              raise AssertionError("the read should have failed")
          except nbd.Error as e:
              assert e.errnum == errno.EIO, e
          assert h.pread(1, 0) == b"\\x2a"
          """), Map.of(), 60).assertSuccess();
    }
    assertThat(sleeper.waits).isEqualTo(RecordingSleeper.seconds(2, 4));
    // No reopen after the last failure: the next request goes to the export that failed.
    assertThat(flaky.opens).hasValue(3);
  }

  @Test
  void retryRequestCarriesNbdcopyOverSporadicFailuresBothWays() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[SIZE];
    new Random(14).nextBytes(image);
    Path in = Files.write(dir.resolve("in.img"), image);
    Path out = dir.resolve("out.img");
    FlakyDisk flaky = new FlakyDisk(SIZE);
    flaky.failEvery = 7;
    try (TestServer server = new TestServer(List.of(new RetryRequestFilter(sleeper)), flaky, ServerConfig.defaults())) {
      Tools.run("nbdcopy", "--request-size=65536", in.toString(), server.uri()).assertSuccess();
      Tools.run("nbdcopy", "--request-size=65536", server.uri(), out.toString()).assertSuccess();
    }
    assertThat(flaky.disk.data).isEqualTo(image);
    assertThat(Files.readAllBytes(out)).isEqualTo(image);
    assertThat(flaky.failures.get()).isGreaterThan(SIZE / 65536 / 7);
    assertThat(flaky.opens.get()).as("no reopens: one per connection").isLessThanOrEqualTo(8);
  }

  @Test
  void retryRequestLetsAClientConnectWhenTheFirstOpenFails() throws Exception {
    Tools.require("nbdinfo");
    FlakyDisk flaky = new FlakyDisk(SIZE);
    flaky.failOpens(1);
    try (TestServer server = new TestServer(List.of(new RetryRequestFilter(sleeper)), flaky, ServerConfig.defaults())) {
      assertThat(Tools.run("nbdinfo", "--size", server.uri()).assertSuccess().stdout().trim()).isEqualTo(String.valueOf(SIZE));
    }
    assertThat(sleeper.waits).isEqualTo(RecordingSleeper.seconds(2));
  }

  @Test
  void retryRidesOutAnOutageThatTheErrorFilterInjects() throws Exception {
    Tools.require("nbdcopy");
    Path outage = Files.createFile(dir.resolve("outage"));
    // The outage ends during the first wait, so the request after the reopen succeeds.
    RetryFilter retry = new RetryFilter(wait -> {
      sleeper.sleep(wait);
      outage.toFile().delete();
    });
    ErrorFilter error = new ErrorFilter();
    error.config("error-rate", "100%");
    error.config("error-file", outage.toString());
    ArrayDisk disk = new ArrayDisk(SIZE);
    new Random(15).nextBytes(disk.data);
    Path out = dir.resolve("out.img");
    try (TestServer server = new TestServer(List.of(retry, error), disk, ServerConfig.defaults())) {
      Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
    }
    assertThat(Files.readAllBytes(out)).isEqualTo(disk.data);
    assertThat(sleeper.waits).isNotEmpty();
  }
}
