package io.jnbd.filters.stats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
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
    Stack stack = new Stack(List.of(stats), new ArrayDisk(1 << 20));
    for (String kv : config) {
      String[] parts = kv.split("=", 2);
      stack.config(parts[0], parts[1]);
    }
    stack.configComplete();
    return stack;
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
  void rejectsABadBoolean() {
    assertThatThrownBy(() -> new StatsFilter().config("statsappend", "maybe"))
        .isInstanceOf(ConfigException.class)
        .hasMessageContaining("statsappend");
  }
}
