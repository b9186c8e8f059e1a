package io.jnbd.filters.cacheextents;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class CacheextentsFilterTest {
  private static final int K64 = 64 * 1024;

  /** Data in [64K, 128K) and [256K, 320K), holes elsewhere. */
  private static ArrayDisk disk() {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Arrays.fill(disk.data, K64, 2 * K64, (byte) 1);
    Arrays.fill(disk.data, 4 * K64, 5 * K64, (byte) 1);
    return disk;
  }

  private static Stack stack(ArrayDisk disk) {
    return Stacks.configured(Catalog.filter("cacheextents"), disk);
  }

  private static String extents(Export export, long offset, long length, int flags) throws Exception {
    Extents extents = new Extents(offset, offset + length);
    export.extents(offset, length, flags, extents);
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < extents.count(); i++) {
      out.append(extents.length(i)).append(':').append(extents.type(i)).append(' ');
    }
    return out.toString().trim();
  }

  @Test
  void aRequestStartingInsideTheLastAnswerIsServedFromIt() throws Exception {
    ArrayDisk disk = disk();
    try (Export export = stack(disk).open(false, "")) {
      assertThat(extents(export, 0, 1 << 20, Flags.REQ_ONE)).isEqualTo(K64 + ":3 " + K64 + ":0 " + 2 * K64 + ":3 " + K64 + ":0 " + 11 * K64 + ":3");
      assertThat(disk.lastExtentsFlags).as("REQ_ONE is not passed below").isZero();
      assertThat(extents(export, K64 + 10, 4 * K64, Flags.REQ_ONE)).isEqualTo((K64 - 10) + ":0 " + 2 * K64 + ":3 " + K64 + ":0 10:3");
      assertThat(extents(export, 9 * K64, K64, 0)).isEqualTo(K64 + ":3");
      assertThat(disk.extentsCalls.get()).isEqualTo(1);
    }
  }

  @Test
  void aRequestOutsideTheLastAnswerReplacesIt() throws Exception {
    ArrayDisk disk = disk();
    try (Export export = stack(disk).open(false, "")) {
      extents(export, 0, 2 * K64, 0);
      extents(export, 2 * K64, K64, 0);
      extents(export, 2 * K64 + 5, K64, 0);
      extents(export, 0, K64, 0);
      assertThat(disk.extentsCalls.get()).isEqualTo(3);
    }
  }

  @Test
  void writesTrimsAndZeroesOnAnyConnectionMakeAnswersStale() throws Exception {
    ArrayDisk disk = disk();
    Stack stack = stack(disk);
    try (Export reader = stack.open(false, ""); Export writer = stack.open(false, "")) {
      assertThat(extents(reader, 0, K64, 0)).isEqualTo(K64 + ":3");
      writer.pwrite(ByteBuffer.wrap(new byte[] {1}), 100, 0);
      assertThat(extents(reader, 0, K64, 0)).isEqualTo("100:3 1:0 " + (K64 - 101) + ":3");
      writer.trim(K64, K64, 0);
      assertThat(extents(reader, K64, K64, 0)).isEqualTo(K64 + ":3");
      writer.zero(0, 200, 0);
      assertThat(extents(reader, 0, K64, 0)).isEqualTo(K64 + ":3");
      assertThat(disk.extentsCalls.get()).isEqualTo(4);
    }
  }

  /** The second and third queries of nbdsh are answered without reaching the plugin. */
  @Test
  @Tag("slow")
  void nbdshQueriesInsideTheFirstAnswerStayInTheFilter() throws Exception {
    Tools.require("nbdsh");
    ArrayDisk disk = disk();
    try (TestServer server = new TestServer(List.of(Catalog.filter("cacheextents")), disk, ServerConfig.defaults())) {
      Tools.nbdshWithExtents(server.uri(), String.join("\n",
              "def first(offset):",
              "    seen = []",
              "    h.block_status((1 << 20) - offset, offset, lambda ctx, off, entries, err: seen.extend(entries[:2]) or 0, nbd.CMD_FLAG_REQ_ONE)",
              "    return seen",
              "assert first(0) == [65536, 3], first(0)",
              "assert first(65536) == [65536, 0], first(65536)",
              "assert first(2 * 65536) == [2 * 65536, 3], first(2 * 65536)"))
          .assertSuccess();
      assertThat(disk.extentsCalls.get()).isEqualTo(1);
    }
  }
}
