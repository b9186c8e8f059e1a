package io.jnbd.filters.truncate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TruncateFilterTest {
  @TempDir Path dir;

  private static long sizeOver(long below, String... config) throws NbdException {
    TruncateFilter filter = new TruncateFilter();
    for (String keyValue : config) {
      String[] kv = keyValue.split("=", 2);
      filter.config(kv[0], kv[1]);
    }
    filter.configComplete();
    return filter.sizeOver(below);
  }

  @Test
  void setsAndRoundsTheSize() throws Exception {
    assertThat(sizeOver(1000001)).isEqualTo(1000001);
    assertThat(sizeOver(1000001, "round-up=512")).isEqualTo(1000448);
    assertThat(sizeOver(1000448, "round-up=512")).isEqualTo(1000448);
    assertThat(sizeOver(1000001, "round-down=512")).isEqualTo(999936);
    assertThat(sizeOver(1000001, "truncate=10", "round-up=4k", "round-down=512")).isEqualTo(4096);
    assertThat(sizeOver(1000001, "truncate=0")).isZero();
    assertThat(sizeOver(1000001, "round-down=2G")).isZero();
    assertThatThrownBy(() -> sizeOver(Long.MAX_VALUE, "round-up=4k")).isInstanceOf(NbdException.class)
        .hasMessageContaining("cannot round");
  }

  @Test
  void roundingMustBeAPowerOfTwoUpTo2G() {
    for (String[] bad : new String[][] {{"round-up", "1000"}, {"round-down", "4G"}, {"round-up", "0"}, {"truncate", "x"}}) {
      assertThatThrownBy(() -> sizeOver(4096, bad[0] + "=" + bad[1])).isInstanceOf(ConfigException.class)
          .hasMessageStartingWith("truncate: " + bad[0] + ": ");
    }
  }

  @Test
  void theExtraSpaceReadsAsZeroesAndTakesOnlyZeroes() throws Exception {
    ArrayDisk disk = new ArrayDisk(1000);
    Arrays.fill(disk.data, (byte) 7);
    try (Export export = Stacks.configured(new TruncateFilter(), disk, "truncate=3000").open(false, "")) {
      assertThat(export.size()).isEqualTo(3000);
      ByteBuffer read = ByteBuffer.allocate(200);
      export.pread(read, 900);
      assertThat(Arrays.copyOfRange(read.array(), 99, 101)).containsExactly(7, 0);
      assertThat(read.hasRemaining()).isFalse();

      export.pwrite(ByteBuffer.wrap(new byte[] {1, 2, 0, 0}), 998, 0);
      assertThat(Arrays.copyOfRange(disk.data, 997, 1000)).containsExactly(7, 1, 2);
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.wrap(new byte[] {5, 0, 0, 9}), 998, 0))
          .isInstanceOf(NbdException.class).extracting(e -> ((NbdException) e).errno()).isEqualTo(Errno.ENOSPC);
      assertThat(disk.data[998]).as("a refused write changes nothing").isEqualTo((byte) 1);

      export.zero(990, 2000, Flags.FUA);
      export.trim(2000, 1000, 0);
      assertThat(disk.data[989]).isEqualTo((byte) 7);
      assertThat(disk.data[990]).isZero();

      Extents extents = new Extents(980, 3000);
      export.extents(980, 2020, 0, extents);
      assertThat(extents.count()).isEqualTo(2);
      assertThat(extents.length(0)).isEqualTo(10);
      assertThat(extents.type(1)).isEqualTo(Extents.HOLE_ZERO);
      assertThat(extents.length(1)).isEqualTo(2010);
    }
  }

  @Test
  void aSmallerSizeHidesTheRest() throws Exception {
    try (Export export = Stacks.configured(new TruncateFilter(), new ArrayDisk(1000), "round-down=512").open(false, "")) {
      assertThat(export.size()).isEqualTo(512);
    }
  }

  @Test
  @Tag("slow")
  void clientsSeeZeroesPastTheEndOfThePluginAndCannotWriteDataThere() throws Exception {
    Tools.require("nbdcopy", "nbdsh");
    ArrayDisk disk = new ArrayDisk(1000);
    Arrays.fill(disk.data, (byte) 7);
    TruncateFilter filter = new TruncateFilter();
    filter.config("round-up", "4k");
    try (TestServer server = new TestServer(List.of(filter), disk, ServerConfig.defaults())) {
      Path out = dir.resolve("copy.img");
      Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
      byte[] expected = new byte[4096];
      Arrays.fill(expected, 0, 1000, (byte) 7);
      assertThat(Files.readAllBytes(out)).isEqualTo(expected);
      String script = """
          import errno
          h.pwrite(bytes(100), 2000)
          try:
              h.pwrite(b"x", 2000)
          except nbd.Error as e:
              print(errno.errorcode[e.errnum])
          """;
      String stdout = Tools.run(List.of("nbdsh", "-u", server.uri(), "-c", script), Map.of(), 60).assertSuccess().stdout();
      assertThat(stdout.trim()).isEqualTo("ENOSPC");
    }
  }

  @Test
  void readsInsideTheLayerBelowAreHandedOverFromItAndReadsPastItAsZeroes() throws Exception {
    ArrayDisk disk = new ArrayDisk(1000);
    Arrays.fill(disk.data, (byte) 7);
    disk.handsOver = true;
    try (Export export = Stacks.configured(new TruncateFilter(), disk, "truncate=3000").open(false, "")) {
      assertThat(Exports.handedOver(export, 900, 100)).containsOnly(7);
      try (ReadData past = export.readData(1000, 2000)) {
        assertThat(past).isEqualTo(new ReadData.Zeroes(2000));
      }
      assertThat(export.readData(999, 2)).as("across the end: through pread").isNull();
      assertThat(disk.viewsOut).hasValue(0);
    }
  }
}
