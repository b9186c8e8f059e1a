package io.jnbd.filters.retry;

import static io.jnbd.testing.RecordingSleeper.seconds;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import io.jnbd.server.Stack;
import io.jnbd.testing.Exports;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.RecordingSleeper;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

class RetryFilterTest {
  private static final int SIZE = 64 * 1024;
  private final RecordingSleeper sleeper = new RecordingSleeper();
  private final FlakyDisk flaky = new FlakyDisk(SIZE);

  RetryFilterTest() {
    new Random(7).nextBytes(flaky.disk.data);
  }

  private Export open(String... config) throws Exception {
    Stack stack = Stacks.configured(new RetryFilter(sleeper), flaky, config);
    return stack.open(false, "");
  }

  private byte[] read(Export export, int offset, int length) throws Exception {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    export.pread(buffer, offset);
    return buffer.array();
  }

  private byte[] expected(int offset, int length) {
    return java.util.Arrays.copyOfRange(flaky.disk.data, offset, offset + length);
  }

  @Test
  void aRequestThatFailsIsRetriedOnAReopenedExportWithGrowingWaits() throws Exception {
    try (Export export = open()) {
      flaky.failCalls(3);
      assertThat(read(export, 4096, 8192)).isEqualTo(expected(4096, 8192));
      assertThat(sleeper.waits).isEqualTo(seconds(2, 4, 8));
      assertThat(flaky.opens).hasValue(4);
      assertThat(flaky.closes).hasValue(3);
    }
    assertThat(flaky.closes).hasValue(4);
  }

  @Test
  void aBrokenExportIsReplacedOnceAndLaterRequestsUseTheNewOne() throws Exception {
    try (Export export = open()) {
      flaky.breakOpenExports();
      assertThat(read(export, 0, 4096)).isEqualTo(expected(0, 4096));
      export.pwrite(ByteBuffer.wrap(new byte[] {1, 2, 3}), 100, 0);
      assertThat(read(export, 100, 3)).containsExactly(1, 2, 3);
      assertThat(flaky.opens).hasValue(2);
      assertThat(sleeper.waits).isEqualTo(seconds(2));
    }
  }

  @Test
  void afterTheLastRetryTheErrorGoesToTheClient() throws Exception {
    try (Export export = open("retries=2", "retry-delay=500ms")) {
      flaky.errno = Errno.ENOSPC;
      flaky.failCalls(100);
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.allocate(512), 0, 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC));
      assertThat(sleeper.waits).containsExactly(Duration.ofMillis(500), Duration.ofSeconds(1));
      assertThat(flaky.opens).hasValue(3);
    }
  }

  @Test
  void noRetriesMeansTheFirstErrorGoesThrough() throws Exception {
    try (Export export = open("retries=0")) {
      flaky.failCalls(1);
      assertThatThrownBy(export::flush).isInstanceOf(NbdException.class);
      assertThat(sleeper.waits).isEmpty();
      assertThat(flaky.opens).hasValue(1);
    }
  }

  @Test
  void withoutExponentialBackOffEveryWaitIsTheSame() throws Exception {
    try (Export export = open("retry-exponential=no", "retry-delay=1.5")) {
      flaky.failCalls(3);
      export.flush();
      assertThat(sleeper.waits).containsExactly(Duration.ofMillis(1500), Duration.ofMillis(1500), Duration.ofMillis(1500));
    }
  }

  @Test
  void aReopenThatFailsCountsAsARetryAndTheNextOneTriesAgain() throws Exception {
    try (Export export = open()) {
      flaky.failOpens(2);
      flaky.breakOpenExports();
      assertThat(read(export, 0, 512)).isEqualTo(expected(0, 512));
      assertThat(sleeper.waits).isEqualTo(seconds(2, 4, 8));
      assertThat(flaky.opens).hasValue(4);
    }
  }

  @Test
  void whenNoReopenWorksTheClientGetsEshutdown() throws Exception {
    try (Export export = open("retries=3")) {
      flaky.failOpens(100);
      flaky.breakOpenExports();
      assertThatThrownBy(() -> read(export, 0, 512))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ESHUTDOWN));
      assertThat(flaky.opens).hasValue(4);
    }
  }

  @Test
  void retryReadonlyReopensReadOnlyAndThenRefusesWrites() throws Exception {
    try (Export export = open("retry-readonly=yes")) {
      export.pwrite(ByteBuffer.wrap(new byte[] {9}), 0, 0);
      flaky.failCalls(1);
      assertThat(read(export, 0, 1)).containsExactly(9);
      assertThat(flaky.lastOpenReadOnly).isTrue();
      int failuresBefore = flaky.failures.get();
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.wrap(new byte[] {1}), 0, 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EROFS));
      assertThatThrownBy(() -> export.zero(0, 512, 0)).isInstanceOf(NbdException.class);
      assertThat(flaky.failures).hasValue(failuresBefore);
      assertThat(sleeper.waits).hasSize(1);
    }
  }

  @Test
  void aReopenedExportThatLostACapabilityFailsTheRequestsThatNeedIt() throws Exception {
    try (Export export = open("retries=1")) {
      flaky.disk.writable = false;
      flaky.failCalls(1);
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.allocate(512), 0, 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EROFS));
      assertThat(flaky.opens).hasValue(2);
    }
  }

  @Test
  void aZeroAnsweredWithEnotsupIsNotRetried() throws Exception {
    flaky.disk.zero = Support.EMULATE;
    try (Export export = open()) {
      assertThatThrownBy(() -> export.zero(0, 512, 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOTSUP));
      assertThat(sleeper.waits).isEmpty();
    }
  }

  @Test
  void extentsAreCollectedAfreshOnEachAttempt() throws Exception {
    java.util.Arrays.fill(flaky.disk.data, 0, 4096, (byte) 0);
    java.util.Arrays.fill(flaky.disk.data, 4096, 8192, (byte) 0x11);
    try (Export export = open()) {
      flaky.failCalls(2);
      Extents extents = new Extents(0, 8192);
      export.extents(0, 8192, 0, extents);
      assertThat(extents.count()).isEqualTo(2);
      assertThat(extents.length(0)).isEqualTo(4096);
      assertThat(extents.type(0)).isEqualTo(Extents.HOLE_ZERO);
      assertThat(extents.type(1)).isEqualTo(Extents.DATA);
    }
  }

  @Test
  void requestsThatFailTogetherShareOneReopen() throws Exception {
    int requests = 8;
    try (Export export = open(); ExecutorService pool = Executors.newFixedThreadPool(requests)) {
      CountDownLatch release = new CountDownLatch(1);
      flaky.holdFailures = release;
      flaky.breakOpenExports();
      List<Future<byte[]>> reads = new ArrayList<>();
      for (int i = 0; i < requests; i++) {
        int offset = i * 4096;
        reads.add(pool.submit(() -> read(export, offset, 4096)));
      }
      while (flaky.failuresWaiting() < requests) {
        Thread.onSpinWait();
      }
      flaky.holdFailures = null;
      release.countDown();
      for (int i = 0; i < requests; i++) {
        assertThat(reads.get(i).get()).isEqualTo(expected(i * 4096, 4096));
      }
      assertThat(flaky.opens).hasValue(2);
      assertThat(sleeper.waits).isEqualTo(seconds(2));
    }
  }

  @Test
  void badParametersNameTheirKey() {
    assertThatThrownBy(() -> new RetryFilter().config("retry-delay", "0"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retry-delay");
    assertThatThrownBy(() -> new RetryFilter().config("retry-delay", "soon"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retry-delay");
    assertThatThrownBy(() -> new RetryFilter().config("retries", "-1"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retries");
    assertThatThrownBy(() -> new RetryFilter().config("retry-exponential", "maybe"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retry-exponential");
    assertThat(new RetryFilter().config("size", "1M")).isFalse();
  }

  @Test
  void aReadDataThatFailsIsRetriedOnAReopenedExportAsAPreadIs() throws Exception {
    flaky.disk.handsOver = true;
    try (Export export = open()) {
      flaky.failCalls(2);
      assertThat(Exports.handedOver(export, 4096, 8192)).isEqualTo(expected(4096, 8192));
      assertThat(sleeper.waits).isEqualTo(seconds(2, 4));
      assertThat(flaky.opens).hasValue(3);
    }
  }

  @Test
  void anExportThatAReopenReplacesIsClosedOnlyOnceTheReadsItHandedOverAreBack() throws Exception {
    flaky.disk.handsOver = true;
    try (Export export = open()) {
      ReadData held = export.readData(0, 4096);
      flaky.breakOpenExports();
      assertThat(read(export, 0, 4096)).isEqualTo(expected(0, 4096));
      assertThat(flaky.opens).hasValue(2);
      assertThat(flaky.closes).as("closed while a read it handed over is out").hasValue(0);
      assertThat(Exports.bytesOf(held)).isEqualTo(expected(0, 4096));
      held.close();
      assertThat(flaky.closes).hasValue(1);
      assertThat(flaky.disk.viewsOut).hasValue(0);
    }
    assertThat(flaky.closes).hasValue(2);
  }
}
