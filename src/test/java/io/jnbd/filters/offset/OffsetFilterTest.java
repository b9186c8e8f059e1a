package io.jnbd.filters.offset;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OffsetFilterTest {
  @TempDir Path dir;

  @Test
  void servesTheWindowAndShiftsEveryRequestIntoIt() throws Exception {
    ArrayDisk disk = new ArrayDisk(64 * 1024);
    Stack stack = Stacks.configured(new OffsetFilter(), disk, "offset=1000", "range=5000");
    try (Export export = stack.open(false, "")) {
      assertThat(export.size()).isEqualTo(5000);
      export.pwrite(ByteBuffer.wrap(new byte[] {1, 2, 3}), 10, 0);
      assertThat(Arrays.copyOfRange(disk.data, 1010, 1013)).containsExactly(1, 2, 3);
      ByteBuffer read = ByteBuffer.allocate(4);
      export.pread(read, 11);
      assertThat(read.array()).containsExactly(2, 3, 0, 0);
      Extents extents = new Extents(0, 5000);
      export.extents(0, 5000, 0, extents);
      assertThat(extents.count()).isEqualTo(3);
      assertThat(new long[] {extents.length(0), extents.length(1), extents.length(2)}).containsExactly(10, 3, 4987);
      assertThat(extents.type(1)).isEqualTo(Extents.DATA);
      export.zero(10, 2, 0);
      assertThat(disk.data[1012]).isEqualTo((byte) 3);
      assertThat(disk.data[1010]).isZero();
    }
  }

  @Test
  void withoutARangeServesToTheEndAndAWindowPastTheEndRefusesTheClient() throws Exception {
    try (Export export = Stacks.configured(new OffsetFilter(), new ArrayDisk(4096), "offset=1k").open(false, "")) {
      assertThat(export.size()).isEqualTo(3072);
    }
    for (String[] config : new String[][] {{"offset=4097"}, {"offset=1k", "range=3073"}}) {
      Stack stack = Stacks.configured(new OffsetFilter(), new ArrayDisk(4096), config);
      assertThatThrownBy(() -> stack.open(false, "")).isInstanceOf(NbdException.class)
          .hasMessageContaining("outside the 4096 bytes");
    }
  }

  @Test
  void aBadSizeNamesTheKey() {
    assertThatThrownBy(() -> new OffsetFilter().config("range", "12q")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("range");
  }

  @Test
  @Tag("slow")
  void nbdcopyCopiesOnlyTheWindow() throws Exception {
    Tools.require("nbdcopy");
    ArrayDisk disk = new ArrayDisk(1 << 20);
    new Random(7).nextBytes(disk.data);
    OffsetFilter filter = new OffsetFilter();
    filter.config("offset", "12345");
    filter.config("range", "500000");
    try (TestServer server = new TestServer(List.of(filter), disk, ServerConfig.defaults())) {
      Path out = dir.resolve("window.img");
      Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
      assertThat(Files.readAllBytes(out)).isEqualTo(Arrays.copyOfRange(disk.data, 12345, 12345 + 500000));
    }
  }
}
