package io.jnbd.filters.retry;

import static io.jnbd.testing.RecordingSleeper.seconds;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.server.Stack;
import io.jnbd.testing.Exports;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.RecordingSleeper;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class RetryRequestFilterTest {
  private final RecordingSleeper sleeper = new RecordingSleeper();
  private final FlakyDisk flaky = new FlakyDisk(64 * 1024);

  private Stack stack(String... config) {
    return Stacks.configured(new RetryRequestFilter(sleeper), flaky, config);
  }

  @Test
  void aFailedRequestIsRetriedOnTheSameExportAfterAFixedWait() throws Exception {
    flaky.disk.data[10] = 5;
    try (Export export = stack().open(false, "")) {
      flaky.failCalls(2);
      ByteBuffer buffer = ByteBuffer.allocate(4096);
      export.pread(buffer, 0);
      assertThat(buffer.array()[10]).isEqualTo((byte) 5);
      assertThat(sleeper.waits).isEqualTo(seconds(2, 2));
      assertThat(flaky.opens).hasValue(1);
    }
  }

  @Test
  void afterTheLastRetryTheErrorGoesToTheClient() throws Exception {
    try (Export export = stack("retry-request-retries=3", "retry-request-delay=10ms").open(false, "")) {
      flaky.errno = Errno.ENOSPC;
      flaky.breakOpenExports();
      assertThatThrownBy(() -> export.zero(0, 4096, 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC));
      assertThat(sleeper.waits).hasSize(3).containsOnly(Duration.ofMillis(10));
      assertThat(flaky.failures).hasValue(4);
      assertThat(flaky.opens).hasValue(1);
    }
  }

  @Test
  void theOpenIsRetriedToo() throws Exception {
    flaky.failOpens(2);
    try (Export export = stack().open(false, "")) {
      export.flush();
    }
    assertThat(flaky.opens).hasValue(3);
    assertThat(sleeper.waits).isEqualTo(seconds(2, 2));
  }

  @Test
  void unlessRetryRequestOpenIsFalse() {
    flaky.failOpens(1);
    assertThatThrownBy(() -> stack("retry-request-open=false").open(false, "")).isInstanceOf(NbdException.class);
    assertThat(sleeper.waits).isEmpty();
  }

  @Test
  void anOpenThatKeepsFailingFailsTheConnection() {
    flaky.failOpens(3);
    assertThatThrownBy(() -> stack().open(false, "")).isInstanceOf(NbdException.class);
    assertThat(flaky.opens).hasValue(3);
  }

  @Test
  void badParametersNameTheirKey() {
    assertThatThrownBy(() -> new RetryRequestFilter().config("retry-request-delay", "0"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retry-request-delay");
    assertThatThrownBy(() -> new RetryRequestFilter().config("retry-request-retries", "two"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retry-request-retries");
    assertThatThrownBy(() -> new RetryRequestFilter().config("retry-request-open", "perhaps"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("retry-request-open");
    assertThat(new RetryRequestFilter().config("retries", "3")).isFalse();
  }

  @Test
  void aReadDataThatFailsIsRetriedOnTheSameExport() throws Exception {
    flaky.disk.data[10] = 5;
    flaky.disk.handsOver = true;
    try (Export export = stack().open(false, "")) {
      flaky.failCalls(1);
      assertThat(Exports.handedOver(export, 0, 512)[10]).isEqualTo((byte) 5);
      assertThat(sleeper.waits).containsExactly(Duration.ofSeconds(2));
      assertThat(flaky.opens).hasValue(1);
    }
  }
}
