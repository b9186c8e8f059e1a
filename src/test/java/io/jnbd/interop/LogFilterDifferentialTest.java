package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
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
 * The same client session against jnbd and nbdkit with the log filter: the two log files must
 * say the same, line for line, once the timestamps are taken off.
 */
@Tag("slow")
class LogFilterDifferentialTest {
  /** One connection that sends each kind of request, two of which the error filter fails. */
  private static final String SESSION = """
      import os
      h = nbd.NBD()
      h.add_meta_context("base:allocation")
      h.connect_uri(os.environ["URI"])
      h.pwrite(b"x" * 512, 4096, nbd.CMD_FLAG_FUA)
      h.pread(512, 0)
      h.zero(4096, 8192, nbd.CMD_FLAG_NO_HOLE)
      h.zero(4096, 8192, nbd.CMD_FLAG_FAST_ZERO)
      # Inside the first 32 KiB, and far from any write, so that the two memory plugins, which
      # allocate in pages of different sizes, report the same extents.
      h.block_status(32768, 0, lambda *args: 0)
      h.block_status(65536, 512 * 1024, lambda *args: 0, nbd.CMD_FLAG_REQ_ONE)
      for failing in (lambda: h.trim(4096, 0), lambda: h.cache(4096, 0)):
          try:
              failing()
          except nbd.Error:
              pass
      h.flush()
      h.shutdown()
      """;

  @TempDir Path dir;

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeAvailable();
  }

  /** A read that keeps failing, then a write, on one connection. */
  private static final String FAILING_READ = """
      import os
      h = nbd.NBD()
      h.connect_uri(os.environ["URI"])
      try:
          h.pread(512, 0)
          raise AssertionError("the read should fail")
      except nbd.Error:
          pass
      h.pwrite(b"x" * 512, 0)
      h.shutdown()
      """;

  private static void runSession(String uri, String script) {
    Tools.run(List.of("nbdsh", "-c", script), Map.of("URI", uri), 60).assertSuccess();
    if (script.equals(SESSION)) {
      Tools.run("nbdinfo", "--list", uri).assertSuccess();
    }
  }

  /** The log without its timestamps, and without nbdkit's Fork, which jnbd has no use for. */
  private static List<String> events(Path log) throws Exception {
    List<String> events = new ArrayList<>();
    for (String line : Files.readAllLines(log)) {
      assertThat(line).matches("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{6} .*");
      String event = line.substring(27);
      if (!event.equals("Fork")) {
        events.add(event);
      }
    }
    return events;
  }

  private List<String> jnbdLog(List<String> filters, List<String> pluginAndArgs, String script) throws Exception {
    Path log = dir.resolve("jnbd.log");
    List<String> args = new ArrayList<>(pluginAndArgs);
    args.add("logfile=" + log);
    try (TestServer server = Probe.jnbdServer(filters, args, ServerConfig.defaults())) {
      runSession(server.uri(), script);
    }
    return events(log);
  }

  private List<String> nbdkitLog(List<String> filters, List<String> pluginAndArgs, String script) throws Exception {
    Path log = dir.resolve("nbdkit.log");
    List<String> command = new ArrayList<>();
    filters.forEach(filter -> command.add("--filter=" + filter));
    command.addAll(pluginAndArgs);
    command.add("logfile=" + log);
    try (Nbdkit nbdkit = new Nbdkit(command)) {
      runSession(nbdkit.uri(), script);
    }
    return events(log);
  }

  @Test
  void aSessionLogsTheSameAsInNbdkit() throws Exception {
    List<String> filters = List.of("log", "error");
    List<String> args = List.of("memory", "size=1M", "error-trim-rate=1", "error-trim=ENOSPC",
        "error-cache-rate=100%", "error-cache=ESHUTDOWN");
    List<String> jnbd = jnbdLog(filters, args, SESSION);
    List<String> expected = new ArrayList<>(nbdkitLog(filters, args, SESSION));
    // nbdinfo asks for each export's description while it has it open; nbdkit has a callback
    // for that, jnbd's server finds it in the export list, so the log shows one more listing.
    expected.addAll(expected.size() - 1, List.of("ListExports id=2 readonly=0 tls=0 ...", "...ListExports id=2 exports=(\"\") return=0"));
    assertThat(jnbd).isEqualTo(expected);
  }

  /**
   * The retry filter over the log filter shows each reopen as a Disconnect and a new Connect;
   * nbdkit's retry-delay cannot go below a second, jnbd's is made short.
   */
  @Test
  void retryReopensShowInTheLogAsInNbdkit() throws Exception {
    List<String> filters = List.of("retry", "log", "error");
    List<String> args = List.of("memory", "size=1M", "error-pread-rate=100%", "retries=2");
    List<String> jnbd = jnbdLog(filters, with(args, "retry-delay=1ms"), FAILING_READ);
    List<String> expected = new ArrayList<>(nbdkitLog(filters, with(args, "retry-delay=1"), FAILING_READ));
    // nbdkit's retry filter serializes the requests of a connection; jnbd's runs them in parallel.
    assertThat(expected.get(0)).isEqualTo("Ready thread_model=2");
    expected.set(0, "Ready thread_model=3");
    assertThat(jnbd).isEqualTo(expected);
    assertThat(jnbd).filteredOn(event -> event.contains("Connect export")).hasSize(3);
  }

  private static List<String> with(List<String> args, String more) {
    List<String> all = new ArrayList<>(args);
    all.add(more);
    return all;
  }
}
