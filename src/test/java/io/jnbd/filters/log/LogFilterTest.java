package io.jnbd.filters.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Client;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LogFilterTest {
  private static final Clock NOON = Clock.fixed(Instant.parse("2026-03-04T12:00:01.000250Z"), ZoneOffset.UTC);
  @TempDir Path dir;
  private final ArrayDisk disk = new ArrayDisk(64 * 1024);

  private Stack stack(String... config) {
    return Stacks.configured(new LogFilter(NOON), disk, config);
  }

  private static List<String> events(Path log) throws Exception {
    return Files.readAllLines(log).stream().map(line -> line.substring(27)).toList();
  }

  @Test
  void linesCarryTheLocalTimeToTheMicrosecond() throws Exception {
    Path log = dir.resolve("log");
    try (Export export = stack("logfile=" + log).open(false, "")) {
      export.flush();
    }
    assertThat(Files.readAllLines(log).get(0)).startsWith("2026-03-04 12:00:01.000250 connection=1 Connect export=\"\" ");
  }

  @Test
  void everyRequestGetsACallAndAResultLine() throws Exception {
    Path log = dir.resolve("log");
    disk.fastZero = false;
    disk.zero = Support.EMULATE;
    try (Export export = stack("logfile=" + log).open(false, "disk one")) {
      export.pwrite(ByteBuffer.allocate(16), 0x20, Flags.FUA);
      export.trim(0, 512, 0);
      Extents extents = new Extents(0, 1024);
      disk.data[600] = 1;
      export.extents(0, 1024, Flags.REQ_ONE, extents);
      assertThatThrownBy(() -> export.zero(0, 512, Flags.MAY_TRIM)).isInstanceOf(NbdException.class);
    }
    assertThat(events(log)).containsExactly(
        "connection=1 Connect export=\"disk one\" tls=0 size=0x10000 minsize=0x0 prefsize=0x0 maxsize=0x0 write=1 flush=1 rotational=0 trim=1 zero=1 fua=2 extents=1 cache=2 fast_zero=0",
        "connection=1 Write id=1 offset=0x20 count=0x10 fua=1 ...",
        "connection=1 ...Write id=1 return=0",
        "connection=1 Trim id=2 offset=0x0 count=0x200 fua=0 ...",
        "connection=1 ...Trim id=2 return=0",
        "connection=1 Extents id=3 offset=0x0 count=0x400 req_one=1 ...",
        "connection=1 ...Extents id=3 extents=(0x0 0x258 \"hole,zero\" 0x258 0x1 \"\" 0x259 0x1a7 \"hole,zero\") return=0",
        "connection=1 Zero id=4 offset=0x0 count=0x200 trim=1 fua=0 fast=0 ...",
        "connection=1 ...Zero id=4 return=-1 error=ENOTSUP",
        "connection=1 Disconnect transactions=4");
  }

  @Test
  void preconnectsAndListingsAreNumberedOnTheirOwn() throws Exception {
    Path log = dir.resolve("log");
    Stack stack = stack("logfile=" + log);
    stack.preconnect(new Client(null), true);
    stack.listExports(false);
    stack.preconnect(new Client(null), false);
    assertThat(events(log)).containsExactly(
        "Preconnect id=1 readonly=1 ...", "...Preconnect id=1 return=0",
        "ListExports id=1 readonly=0 tls=0 ...", "...ListExports id=1 exports=(\"\") return=0",
        "Preconnect id=2 readonly=0 ...", "...Preconnect id=2 return=0");
  }

  @Test
  void concurrentRequestsKeepTheirLinesWholeAndTheirIdsApart() throws Exception {
    Path log = dir.resolve("log");
    int requests = 200;
    try (Export export = stack("logfile=" + log).open(false, ""); ExecutorService pool = Executors.newFixedThreadPool(8)) {
      List<Future<?>> done = new ArrayList<>();
      for (int i = 0; i < requests; i++) {
        int offset = i * 16;
        done.add(pool.submit(() -> {
          export.pread(ByteBuffer.allocate(16), offset);
          return null;
        }));
      }
      for (Future<?> future : done) {
        future.get();
      }
    }
    List<String> events = events(log);
    assertThat(events).hasSize(2 * requests + 2);
    for (int id = 1; id <= requests; id++) {
      String call = "connection=1 Read id=" + id + " offset=";
      String result = "connection=1 ...Read id=" + id + " return=0";
      assertThat(events).filteredOn(e -> e.startsWith(call)).hasSize(1);
      assertThat(events.indexOf(result)).isGreaterThan(events.indexOf(events.stream().filter(e -> e.startsWith(call)).findFirst().orElseThrow()));
    }
  }

  @Test
  void replacesTheFileUnlessAskedToAppend() throws Exception {
    Path log = Files.writeString(dir.resolve("log"), "old line\n");
    stack("logfile=" + log).open(false, "").close();
    assertThat(Files.readAllLines(log)).hasSize(2).noneMatch(line -> line.equals("old line"));
    stack("logfile=" + log, "logappend=true").open(false, "").close();
    assertThat(Files.readAllLines(log)).hasSize(4);
  }

  @Test
  void withoutALogfileItDoesNothing() throws Exception {
    try (Export export = stack().open(false, "")) {
      export.flush();
    }
    try (var files = Files.list(dir)) {
      assertThat(files).isEmpty();
    }
  }

  @Test
  void quotesAsAShellWould() {
    assertThat(LogFile.quote("")).isEqualTo("\"\"");
    assertThat(LogFile.quote("a,b=c:d/e.f-g_h9")).isEqualTo("a,b=c:d/e.f-g_h9");
    assertThat(LogFile.quote("a b")).isEqualTo("\"a b\"");
    assertThat(LogFile.quote("x@y")).isEqualTo("\"x@y\"");
    assertThat(LogFile.quote("a\"b$c\\d`e")).isEqualTo("\"a\\\"b\\$c\\\\d\\`e\"");
    assertThat(LogFile.quote("é")).isEqualTo("\"é\"");
  }

  @Test
  void badParametersNameTheirKey() {
    assertThatThrownBy(() -> new LogFilter().config("logappend", "sometimes"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("log: logappend: ");
    assertThatThrownBy(() -> stack("logfile=" + dir.resolve("missing/dir/log")))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("log: logfile: ");
    assertThat(new LogFilter().config("logscript", "echo")).isFalse();
  }

  @Test
  void aFailedCallLogsItsErrno() throws Exception {
    Path log = dir.resolve("log");
    disk.writable = false;
    try (Export export = Stacks.configured(new LogFilter(NOON), disk, "logfile=" + log).open(true, "")) {
      export.cache(0, 512);
    }
    assertThat(events(log)).contains("connection=1 ...Cache id=1 return=0");
    assertThat(LogFilter.failure(new NbdException(Errno.EROFS, "x"))).isEqualTo("return=-1 error=EROFS");
    assertThat(LogFilter.failure(new java.io.IOException("x"))).isEqualTo("return=-1 error=EIO");
  }

  @Test
  void aReadHandedOverIsLoggedOnceAndOneLeftToPreadByThePread() throws Exception {
    Path log = dir.resolve("log");
    disk.handsOver = true;
    try (Export export = stack("logfile=" + log).open(false, "")) {
      assertThat(Exports.handedOver(export, 0x200, 0x100)).hasSize(0x100);
      disk.handsOver = false;
      assertThat(export.readData(0, 0x100)).isNull();
      export.pread(ByteBuffer.allocate(0x100), 0);
    }
    assertThat(events(log)).containsSubsequence(
        "connection=1 Read id=1 offset=0x200 count=0x100 ...",
        "connection=1 ...Read id=1 return=0",
        "connection=1 Read id=2 offset=0x0 count=0x100 ...",
        "connection=1 ...Read id=2 return=0",
        "connection=1 Disconnect transactions=2");
  }

  @Test
  void aReadDataThatFailsIsLoggedWithItsError() throws Exception {
    Path log = dir.resolve("log");
    FlakyDisk flaky = new FlakyDisk(4096);
    flaky.disk.handsOver = true;
    flaky.failCalls(1);
    try (Export export = Stacks.configured(new LogFilter(NOON), flaky, "logfile=" + log).open(false, "")) {
      assertThatThrownBy(() -> export.readData(0, 512)).isInstanceOf(NbdException.class);
    }
    assertThat(events(log)).containsSubsequence(
        "connection=1 Read id=1 offset=0x0 count=0x200 ...",
        "connection=1 ...Read id=1 return=-1 error=EIO");
  }
}
