package io.jnbd.filters.rate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RateFilterTest {
  private static final long SECOND = 1_000_000_000L;
  @TempDir Path dir;

  /** Virtual time: sleeping moves it on, and every sleep is recorded. */
  private static final class VirtualTime {
    final AtomicLong now = new AtomicLong(1_000 * SECOND);
    final List<Long> sleeps = new CopyOnWriteArrayList<>();

    void sleep(Duration duration) {
      long nanos = duration.toNanos();
      sleeps.add(nanos);
      now.addAndGet(nanos);
    }

    void pass(long nanos) {
      now.addAndGet(nanos);
    }
  }

  private final VirtualTime time = new VirtualTime();

  private RateFilter filter() {
    return new RateFilter(time.now::get, time::sleep);
  }

  private Stack stack(RateFilter filter, String... config) {
    return Stacks.configured(List.of(filter), new ArrayDisk(8 << 20), config);
  }

  private static void read(Export export, int bytes) throws Exception {
    export.pread(ByteBuffer.allocate(bytes), 0);
  }

  @Test
  void bucketStartsFullThenFillsAtTheRateUpToItsCapacity() {
    TokenBucket bucket = new TokenBucket(8000, 2.0, 0);
    assertThat(bucket.take(16000, 0)).isEqualTo(TokenBucket.Debt.NONE);
    assertThat(bucket.take(8000, 0)).isEqualTo(new TokenBucket.Debt(8000, SECOND));
    assertThat(bucket.take(4000, SECOND / 2)).isEqualTo(TokenBucket.Debt.NONE);
    // Ten idle seconds fill it to capacity, not beyond.
    assertThat(bucket.take(16001, 10 * SECOND)).isEqualTo(new TokenBucket.Debt(1, SECOND / 8000));
  }

  @Test
  void noRateIsNoLimitAndLoweringTheRateShrinksTheBucket() {
    TokenBucket bucket = new TokenBucket(0, 2.0, 0);
    assertThat(bucket.take(Long.MAX_VALUE / 2, 0)).isEqualTo(TokenBucket.Debt.NONE);
    bucket.setRate(1000, 0);
    assertThat(bucket.take(1, 0)).isEqualTo(new TokenBucket.Debt(1, SECOND / 1000));
    bucket.setRate(8000, 0);
    bucket.setRate(100, 3 * SECOND);
    assertThat(bucket.take(200, 3 * SECOND)).isEqualTo(TokenBucket.Debt.NONE);
    assertThat(bucket.take(1, 3 * SECOND)).isEqualTo(new TokenBucket.Debt(1, SECOND / 100));
  }

  @Test
  void readsSleepOffWhatTheBucketLacks() throws Exception {
    // 64 KiB/s (524288 bits/s), bursts of 1 s.
    try (Export export = stack(filter(), "rate=512k", "burstiness=1").open(false, "")) {
      read(export, 64 * 1024);
      assertThat(time.sleeps).isEmpty();
      read(export, 32 * 1024);
      assertThat(time.sleeps).containsExactly(SECOND / 2);
      time.pass(SECOND / 4);
      read(export, 32 * 1024);
      assertThat(time.sleeps).containsExactly(SECOND / 2, SECOND / 4);
    }
  }

  @Test
  void readsAndWritesHaveSeparateBuckets() throws Exception {
    try (Export export = stack(filter(), "rate=512k", "burstiness=1").open(false, "")) {
      read(export, 64 * 1024);
      export.pwrite(ByteBuffer.allocate(64 * 1024), 0, 0);
      export.zero(0, 1 << 20, 0);
      assertThat(time.sleeps).isEmpty();
    }
  }

  @Test
  void theServerRateIsSharedAndTheConnectionRateIsNot() throws Exception {
    Stack stack = stack(filter(), "rate=1M", "connection-rate=512k", "burstiness=1");
    try (Export a = stack.open(false, ""); Export b = stack.open(false, "")) {
      read(a, 64 * 1024);
      read(b, 64 * 1024);
      assertThat(time.sleeps).as("each connection's bucket holds 64 KiB, the server's 128 KiB").isEmpty();
      read(a, 32 * 1024);
      // Both buckets are empty: a quarter second at the server's rate, then the connection's
      // bucket, which filled at half that rate meanwhile, owes another quarter second.
      assertThat(time.sleeps).containsExactly(SECOND / 4, SECOND / 4);
    }
  }

  @Test
  void rateFileIsReadAtStartAndAtMostOnceASecondAfter() throws Exception {
    Path file = Files.writeString(dir.resolve("rate"), "512k\n");
    RateFilter filter = filter();
    Stack stack = stack(filter, "rate=1G", "rate-file=" + file, "burstiness=1");
    assertThat(filter.reads.rate()).isEqualTo(512 * 1024);
    try (Export export = stack.open(false, "")) {
      Files.writeString(file, "1M");
      read(export, 1);
      assertThat(filter.reads.rate()).as("re-read too soon").isEqualTo(512 * 1024);
      time.pass(RateSource.RECHECK_NANOS);
      read(export, 1);
      assertThat(filter.reads.rate()).isEqualTo(1024 * 1024);
      Files.delete(file);
      time.pass(RateSource.RECHECK_NANOS);
      read(export, 1);
      assertThat(filter.reads.rate()).as("a deleted file keeps the last rate").isEqualTo(1024 * 1024);
      Files.writeString(file, "nonsense");
      time.pass(RateSource.RECHECK_NANOS);
      read(export, 1);
      assertThat(filter.reads.rate()).as("a bad file is ignored").isEqualTo(1024 * 1024);
    }
  }

  @Test
  void absentRateFileLeavesTheConfiguredRate() {
    RateFilter filter = filter();
    stack(filter, "rate=2M", "rate-file=" + dir.resolve("absent"));
    assertThat(filter.reads.rate()).isEqualTo(2 << 20);
  }

  @Test
  void badValuesNameTheKey() {
    assertThatThrownBy(() -> stack(filter(), "rate=0")).isInstanceOf(ConfigException.class).hasMessage("rate: rate cannot be 0");
    assertThatThrownBy(() -> stack(filter(), "rate=1M", "connection-rate=0")).isInstanceOf(ConfigException.class)
        .hasMessage("rate: connection-rate cannot be 0");
    assertThatThrownBy(() -> filter().config("connection-rate", "1.5M")).isInstanceOf(ConfigException.class).hasMessageContaining("connection-rate");
    assertThatThrownBy(() -> filter().config("burstiness", "abc")).isInstanceOf(ConfigException.class).hasMessageContaining("burstiness");
    assertThatThrownBy(() -> filter().config("burstiness", "-1")).isInstanceOf(ConfigException.class).hasMessageContaining("burstiness");
  }

  /** nbdcopy through a limit far below what it asks for: the copy completes, having slept. */
  @Test
  @Tag("slow")
  void nbdcopyCompletesThroughTheLimit() throws Exception {
    Tools.require("nbdcopy");
    ArrayDisk disk = new ArrayDisk(4 << 20);
    new Random(7).nextBytes(disk.data);
    RateFilter filter = filter();
    filter.config("rate", "8M");
    filter.config("burstiness", "0.5");
    try (TestServer server = new TestServer(List.of(filter), disk, ServerConfig.defaults())) {
      Path out = dir.resolve("copy.img");
      Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
      assertThat(Files.readAllBytes(out)).isEqualTo(disk.data);
    }
    long slept = time.sleeps.stream().mapToLong(Long::longValue).sum();
    // 4 MiB at 1 MiB/s with half a second of burst: at least 3.5 s of (virtual) sleep.
    assertThat(slept).isGreaterThanOrEqualTo(3 * SECOND + SECOND / 2);
  }

  @Test
  void readsHandedOverAreCountedAndPacedAsPreadsAre() throws Exception {
    ArrayDisk disk = new ArrayDisk(8 << 20);
    disk.handsOver = true;
    Stack stack = Stacks.configured(List.of(filter()), disk, "rate=512k", "burstiness=1");
    try (Export export = stack.open(false, "")) {
      assertThat(Exports.handedOver(export, 0, 64 * 1024)).hasSize(64 * 1024);
      assertThat(time.sleeps).isEmpty();
      assertThat(Exports.handedOver(export, 0, 32 * 1024)).hasSize(32 * 1024);
      assertThat(time.sleeps).containsExactly(SECOND / 2);
      disk.handsOver = false;
      assertThat(export.readData(0, 32 * 1024)).isNull();
      assertThat(time.sleeps).containsExactly(SECOND / 2);
    }
  }
}
