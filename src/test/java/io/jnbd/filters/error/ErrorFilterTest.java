package io.jnbd.filters.error;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.PrimitiveIterator;
import java.util.stream.DoubleStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.function.Executable;

class ErrorFilterTest {
  @TempDir Path dir;
  private final ArrayDisk disk = new ArrayDisk(64 * 1024);

  private Export open(ErrorFilter filter, String... config) throws Exception {
    return Stacks.configured(filter, disk, config).open(false, "");
  }

  private Export open(String... config) throws Exception {
    return open(new ErrorFilter(() -> 0.5), config);
  }

  /** The errno each operation fails with, or "ok", in the order pread pwrite trim zero extents cache flush. */
  private static List<String> outcomes(Export export) {
    List<Executable> calls = List.of(
        () -> export.pread(ByteBuffer.allocate(512), 0),
        () -> export.pwrite(ByteBuffer.allocate(512), 0, 0),
        () -> export.trim(0, 512, 0),
        () -> export.zero(0, 512, 0),
        () -> export.extents(0, 512, 0, new Extents(0, 512)),
        () -> export.cache(0, 512),
        export::flush);
    List<String> outcomes = new ArrayList<>();
    for (Executable call : calls) {
      try {
        call.execute();
        outcomes.add("ok");
      } catch (NbdException e) {
        outcomes.add(e.errno().name());
      } catch (Throwable e) {
        throw new AssertionError(e);
      }
    }
    return outcomes;
  }

  @Test
  void withoutARateNothingFails() throws Exception {
    try (Export export = open("error=ENOSPC")) {
      assertThat(outcomes(export)).containsOnly("ok");
    }
  }

  @Test
  void aFullRateFailsEveryOperationButFlushWithEioByDefault() throws Exception {
    try (Export export = open("error-rate=100%")) {
      assertThat(outcomes(export)).containsExactly("EIO", "EIO", "EIO", "EIO", "EIO", "EIO", "ok");
    }
  }

  @Test
  void perOperationKeysApplyToTheirOperationOnlyAndLaterKeysWin() throws Exception {
    try (Export export = open("error=ENOSPC", "error-pread=EPERM", "error-rate=1", "error-trim-rate=0",
        "error-extents-rate=0%", "error-cache=ESHUTDOWN", "error-zero=EINVAL", "error=ENOMEM", "error-pwrite=EINVAL")) {
      assertThat(outcomes(export)).containsExactly("ENOMEM", "EINVAL", "ok", "ENOMEM", "ok", "ENOMEM", "ok");
    }
  }

  @Test
  void aFailedRequestNeverReachesTheLayerBelow() throws Exception {
    try (Export export = open("error-pwrite-rate=1")) {
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.wrap(new byte[] {7}), 0, 0)).isInstanceOf(NbdException.class);
      assertThat(disk.data[0]).isZero();
    }
  }

  @Test
  void theRateIsTheShareOfRequestsThatFail() throws Exception {
    PrimitiveIterator.OfDouble draws = DoubleStream.of(0.05, 0.5, 0.29, 0.3, 0.99).iterator();
    try (Export export = open(new ErrorFilter(draws::nextDouble), "error-pread-rate=30%")) {
      List<String> reads = new ArrayList<>();
      for (int i = 0; i < 5; i++) {
        reads.add(outcomes(export).get(0));
      }
      assertThat(reads).containsExactly("EIO", "ok", "EIO", "ok", "ok");
    }
  }

  @Test
  void errorsComeOnlyWhileTheFileExists() throws Exception {
    Path trigger = dir.resolve("inject");
    try (Export export = open("error-rate=1", "error-file=" + trigger, "error-extents-file=" + dir.resolve("other"))) {
      assertThat(outcomes(export)).containsOnly("ok");
      Files.createFile(trigger);
      assertThat(outcomes(export)).containsExactly("EIO", "EIO", "EIO", "EIO", "ok", "EIO", "ok");
      Files.delete(trigger);
      assertThat(outcomes(export)).containsOnly("ok");
    }
  }

  @Test
  void badValuesNameTheirKeyAndUnknownKeysPassOn() {
    ErrorFilter filter = new ErrorFilter();
    for (String[] bad : new String[][] {{"error", "EROFS"}, {"error-pread", "eio"}, {"error-rate", "150%"},
        {"error-rate", "-1"}, {"error-zero-rate", "1.5"}, {"error-cache-rate", "often"}, {"error-rate", "NaN"}}) {
      assertThatThrownBy(() -> filter.config(bad[0], bad[1])).as(bad[0] + "=" + bad[1])
          .isInstanceOf(ConfigException.class).hasMessageStartingWith("error: " + bad[0] + ": ");
    }
    assertThat(filter.config("error-flush-rate", "1")).isFalse();
    assertThat(filter.config("error-file-rate", "1")).isFalse();
    assertThat(filter.config("errors", "1")).isFalse();
    assertThat(filter.config("size", "1M")).isFalse();
    assertThat(ErrorFilter.parseRate("r", "0.5%")).isEqualTo(0.005);
  }

  @Test
  void aReadHandedOverFailsAsAPreadWouldAndGivesTheBytesBack() throws Exception {
    disk.handsOver = true;
    try (Export failing = open("error-pread-rate=100%", "error-pread=ENOSPC")) {
      assertThatThrownBy(() -> failing.readData(0, 512)).isInstanceOf(NbdException.class)
          .satisfies(e -> assertThat(((NbdException) e).errno()).isEqualTo(Errno.ENOSPC));
      assertThat(disk.viewsOut.get()).isZero();
    }
    try (Export passing = open("error-pread-rate=40%")) {
      assertThat(Exports.handedOver(passing, 0, 512)).hasSize(512);
    }
  }
}
