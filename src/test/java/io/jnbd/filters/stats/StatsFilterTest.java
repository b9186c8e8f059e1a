package io.jnbd.filters.stats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StatsFilterTest {
  @TempDir Path dir;

  private static void someTraffic(Stack stack) throws Exception {
    try (Export export = stack.open(false, "")) {
      for (int i = 0; i < 3; i++) {
        export.pread(ByteBuffer.allocate(4096), i * 4096L);
      }
      export.pwrite(ByteBuffer.allocate(1000), 0, 0);
      export.zero(0, 8192, 0);
      export.flush();
    }
  }

  private static Stack stack(StatsFilter stats, String... config) {
    return Stacks.configured(stats, new ArrayDisk(1 << 20), config);
  }

  @Test
  void countsRequestsAndBytesPerOperationAndWritesTheFileAtExit() throws Exception {
    Path file = dir.resolve("stats.txt");
    StatsFilter stats = new StatsFilter();
    Stack stack = stack(stats, "statsfile=" + file);
    someTraffic(stack);
    assertThat(stats.read.requests.sum()).isEqualTo(3);
    assertThat(stats.read.bytes.sum()).isEqualTo(3 * 4096);
    assertThat(stats.write.bytes.sum()).isEqualTo(1000);
    assertThat(stats.zero.bytes.sum()).isEqualTo(8192);
    assertThat(stats.flush.requests.sum()).isEqualTo(1);
    stack.unload();
    List<String> lines = Files.readAllLines(file);
    assertThat(lines.get(0)).startsWith("elapsed time: ");
    assertThat(lines).anyMatch(l -> l.startsWith("total: 6 ops, 20.98 KiB (21480 bytes)"));
    assertThat(lines).anyMatch(l -> l.startsWith("read: 3 ops, 12.00 KiB (12288 bytes)") && l.contains("0 errors"));
    assertThat(lines).anyMatch(l -> l.startsWith("write: 1 ops, 1000 B"));
    assertThat(lines).noneMatch(l -> l.startsWith("trim:"));
  }

  @Test
  void appendsWhenAsked() throws Exception {
    Path file = dir.resolve("stats.txt");
    for (int run = 0; run < 2; run++) {
      Stack stack = stack(new StatsFilter(), "statsfile=" + file, "statsappend=true");
      someTraffic(stack);
      stack.unload();
    }
    assertThat(Files.readAllLines(file).stream().filter(l -> l.startsWith("elapsed time"))).hasSize(2);
    Stack stack = stack(new StatsFilter(), "statsfile=" + file);
    stack.unload();
    assertThat(Files.readAllLines(file).stream().filter(l -> l.startsWith("elapsed time"))).hasSize(1);
  }

  @Test
  void extentsAndCacheRequestsMoveNoBytes() throws Exception {
    StatsFilter stats = new StatsFilter();
    Stack stack = stack(stats);
    try (Export export = stack.open(false, "")) {
      export.pread(ByteBuffer.allocate(4096), 0);
      export.extents(0, 1 << 20, 0, new Extents(0, 1 << 20));
      export.cache(0, 1 << 20);
    }
    List<String> lines = stats.report();
    assertThat(lines.get(1)).startsWith("total: 3 ops, 4.00 KiB (4096 bytes), ");
    assertThat(lines).anyMatch(l -> l.startsWith("extents: 1 ops, spanning 1.00 MiB (1048576 bytes), 0 errors"));
    assertThat(lines).anyMatch(l -> l.startsWith("cache: 1 ops, spanning 1.00 MiB"));
  }

  /** Reads of 10 x 4 KiB at multiples of 4 KiB, 3 x 1 KiB at 1 KiB and 3 KiB, 1 x 64 KiB. */
  private static List<String> breakdown(String... config) throws Exception {
    StatsFilter stats = new StatsFilter();
    Stack stack = stack(stats, config);
    try (Export export = stack.open(false, "")) {
      for (int i = 0; i < 10; i++) {
        export.pread(ByteBuffer.allocate(4096), i * 4096L);
      }
      export.pread(ByteBuffer.allocate(1024), 1024);
      export.pread(ByteBuffer.allocate(1024), 1024);
      export.pread(ByteBuffer.allocate(1024), 3072);
      export.pread(ByteBuffer.allocate(65536), 1 << 19);
    }
    return stats.report().stream().filter(l -> l.startsWith(" ")).toList();
  }

  @Test
  void breaksRequestsDownBySizeAndAlignmentUpToTheThreshold() throws Exception {
    assertThat(breakdown()).containsExactly(
        "  2^12 to 2^13-1 bytes: 71.4% (10 requests, 40.00 KiB (40960 bytes))",
        "    offset aligned to 2^12: 100.0% (10)",
        "    offset aligned to 2^13: 50.0% (5)",
        "    offset aligned to 2^14: 30.0% (3)",
        "    offset aligned to 2^15: 20.0% (2)",
        "  2^10 to 2^11-1 bytes: 21.4% (3 requests, 3.00 KiB (3072 bytes))",
        "    offset aligned to 2^10: 100.0% (3)",
        "  2^16 to 2^17-1 bytes: 7.1% (1 requests, 64.00 KiB (65536 bytes))",
        "    offset aligned to 2^19: 100.0% (1)");
    assertThat(breakdown("statsthreshold=50")).containsExactly(
        "  2^12 to 2^13-1 bytes: 71.4% (10 requests, 40.00 KiB (40960 bytes))",
        "    offset aligned to 2^12: 100.0% (10)",
        "    offset aligned to 2^13: 50.0% (5)",
        "    offset aligned to 2^14: 30.0% (3)",
        "  other sizes: 28.6% (4 requests, 67.00 KiB (68608 bytes))");
    assertThat(breakdown("statsthreshold=0")).isEmpty();
  }

  @Test
  void rejectsBadValues() {
    assertThatThrownBy(() -> new StatsFilter().config("statsappend", "maybe"))
        .isInstanceOf(ConfigException.class)
        .hasMessageContaining("statsappend");
    for (String bad : List.of("101", "-1", "50.5", "")) {
      assertThatThrownBy(() -> new StatsFilter().config("statsthreshold", bad))
          .isInstanceOf(ConfigException.class)
          .hasMessageContaining("statsthreshold");
    }
  }

  @Test
  void readsHandedOverAreCountedOnceAndFailedOnesAsErrors() throws Exception {
    StatsFilter stats = new StatsFilter();
    FlakyDisk disk = new FlakyDisk(1 << 20);
    disk.disk.handsOver = true;
    Stack stack = Stacks.configured(stats, disk);
    try (Export export = stack.open(false, "")) {
      assertThat(Exports.handedOver(export, 4096, 8192)).hasSize(8192);
      disk.failCalls(1);
      assertThatThrownBy(() -> export.readData(0, 512)).isInstanceOf(NbdException.class);
      disk.disk.handsOver = false;
      assertThat(export.readData(0, 1024)).isNull();
      export.pread(ByteBuffer.allocate(1024), 0);
    }
    assertThat(stats.read.requests.sum()).isEqualTo(3);
    assertThat(stats.read.bytes.sum()).isEqualTo(8192 + 512 + 1024);
    assertThat(stats.read.errors.sum()).isEqualTo(1);
  }
}
