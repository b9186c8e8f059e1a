package io.jnbd.filters.delay;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.RecordingSleeper;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class DelayFilterTest {
  private final RecordingSleeper sleeper = new RecordingSleeper();
  private final ArrayDisk disk = new ArrayDisk(64 * 1024);

  private Stack stack(String... config) {
    return Stacks.configured(new DelayFilter(sleeper), disk, config);
  }

  /** One request of each kind, flush included. */
  private static void oneOfEach(Export export) throws Exception {
    export.pread(ByteBuffer.allocate(512), 0);
    export.pwrite(ByteBuffer.allocate(512), 0, 0);
    export.zero(0, 512, 0);
    export.trim(0, 512, 0);
    export.extents(0, 512, 0, new Extents(0, 512));
    export.cache(0, 512);
    export.flush();
  }

  private static Duration ms(long millis) {
    return Duration.ofMillis(millis);
  }

  @Test
  void eachKindOfRequestWaitsItsOwnDelayAndFlushNone() throws Exception {
    try (Export export = stack("rdelay=1", "delay-write=2ms", "delay-zero=3ms", "delay-trim=4ms",
        "delay-extents=5ms", "delay-cache=6ms", "delay-open=7ms", "delay-close=8ms").open(false, "")) {
      oneOfEach(export);
    }
    assertThat(sleeper.waits).containsExactly(ms(7), ms(1000), ms(2), ms(3), ms(4), ms(5), ms(6), ms(8));
  }

  @Test
  void withNoDelaysNothingWaits() throws Exception {
    try (Export export = stack().open(false, "")) {
      oneOfEach(export);
    }
    assertThat(sleeper.waits).isEmpty();
  }

  @Test
  void wdelaySetsWriteZeroAndTrimAndLaterKeysOverrideEarlierOnes() throws Exception {
    try (Export export = stack("delay-zero=0", "wdelay=10ms", "delay-trim=0", "delay-read=1ms", "rdelay=2ms").open(false, "")) {
      oneOfEach(export);
    }
    assertThat(sleeper.waits).containsExactly(ms(2), ms(10), ms(10));
  }

  @Test
  void aFastZeroIsDelayedLikeAnyZeroByDefault() throws Exception {
    try (Export export = stack("delay-zero=10ms").open(false, "")) {
      export.zero(0, 512, Flags.FAST_ZERO);
    }
    assertThat(sleeper.waits).containsExactly(ms(10));
    assertThat(disk.nativeZeroes).hasValue(1);
  }

  @Test
  void withDelayFastZeroFalseADelayedFastZeroFailsAtOnceWithoutReachingTheDisk() throws Exception {
    try (Export export = stack("delay-zero=10ms", "delay-fast-zero=false").open(false, "")) {
      assertThatThrownBy(() -> export.zero(0, 512, Flags.FAST_ZERO))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOTSUP));
      assertThat(sleeper.waits).isEmpty();
      assertThat(disk.nativeZeroes).hasValue(0);
      export.zero(0, 512, 0);
      assertThat(sleeper.waits).containsExactly(ms(10));
    }
  }

  @Test
  void delayFastZeroFalseWithoutAZeroDelayChangesNothing() throws Exception {
    try (Export export = stack("delay-fast-zero=false").open(false, "")) {
      export.zero(0, 512, Flags.FAST_ZERO);
    }
    assertThat(disk.nativeZeroes).hasValue(1);
  }

  @Test
  void aWaitCutShortByAStoppingServerFailsTheRequestWithEshutdown() throws Exception {
    DelayFilter filter = new DelayFilter(duration -> {
      throw new InterruptedException();
    });
    try (Export export = Stacks.configured(filter, disk, "rdelay=1").open(false, "")) {
      assertThatThrownBy(() -> export.pread(ByteBuffer.allocate(512), 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ESHUTDOWN));
      assertThat(Thread.interrupted()).isTrue();
    }
  }

  @Test
  void badValuesNameTheirKeyAndOtherKeysPassOn() {
    assertThatThrownBy(() -> new DelayFilter().config("rdelay", "slow"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("delay: rdelay: ");
    assertThatThrownBy(() -> new DelayFilter().config("delay-close", "-1"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("delay: delay-close: ");
    assertThatThrownBy(() -> new DelayFilter().config("delay-fast-zero", "maybe"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("delay: delay-fast-zero: ");
    assertThat(new DelayFilter().config("delay-flush", "1")).isFalse();
    assertThat(new DelayFilter().config("size", "1M")).isFalse();
  }

  @Test
  void aReadHandedOverWaitsOnceAndOneLeftToPreadWaitsOnceToo() throws Exception {
    disk.data[100] = 7;
    disk.handsOver = true;
    try (Export export = stack("rdelay=5ms").open(false, "")) {
      assertThat(Exports.handedOver(export, 0, 512)[100]).isEqualTo((byte) 7);
      assertThat(sleeper.waits).containsExactly(ms(5));
      disk.handsOver = false;
      assertThat(export.readData(0, 512)).isNull();
      export.pread(ByteBuffer.allocate(512), 0);
      assertThat(sleeper.waits).containsExactly(ms(5), ms(5));
    }
  }
}
