package io.jnbd.filters.swab;

import static io.jnbd.testing.Exports.read;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SwabFilterTest {
  @TempDir Path dir;

  private static ArrayDisk counting(int size) {
    ArrayDisk disk = new ArrayDisk(size);
    for (int i = 0; i < size; i++) {
      disk.data[i] = (byte) i;
    }
    return disk;
  }

  @Test
  void swapsEachWordOnReadAndWrite() throws Exception {
    Object[][] cases = {
        {"16", new byte[] {1, 0, 3, 2, 5, 4, 7, 6}},
        {"32", new byte[] {3, 2, 1, 0, 7, 6, 5, 4}},
        {"64", new byte[] {7, 6, 5, 4, 3, 2, 1, 0}},
        {"8", new byte[] {0, 1, 2, 3, 4, 5, 6, 7}}};
    for (Object[] c : cases) {
      ArrayDisk disk = counting(1003);
      try (Export export = Stacks.configured(new SwabFilter(), disk, "swab-bits=" + c[0]).open(false, "")) {
        assertThat(read(export, 0, 8)).as("swab-bits=" + c[0]).containsExactly((byte[]) c[1]);
        export.pwrite(ByteBuffer.wrap(new byte[] {0, 1, 2, 3, 4, 5, 6, 7}), 8, 0);
        assertThat(Arrays.copyOfRange(disk.data, 8, 16)).containsExactly((byte[]) c[1]);
        assertThat(read(export, 8, 8)).containsExactly(0, 1, 2, 3, 4, 5, 6, 7);
      }
    }
  }

  @Test
  void theSizeIsWholeWordsAndTheWordIsTheMinimumBlockSize() throws Exception {
    try (Export export = Stacks.configured(new SwabFilter(), counting(1003), "swab-bits=32").open(false, "")) {
      assertThat(export.size()).isEqualTo(1000);
      assertThat(export.blockSize()).isEqualTo(new BlockSize(4, 4096, BlockSize.DEFAULT.maximum()));
      for (long[] unaligned : new long[][] {{2, 4}, {4, 2}}) {
        assertThatThrownBy(() -> export.pread(ByteBuffer.allocate((int) unaligned[1]), unaligned[0]))
            .isInstanceOf(NbdException.class).extracting(e -> ((NbdException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> export.zero(unaligned[0], unaligned[1], 0)).isInstanceOf(NbdException.class);
      }
    }
  }

  @Test
  void onlyTheFourWordSizesAreAccepted() {
    for (String bad : List.of("12", "", "0x10", "128")) {
      assertThatThrownBy(() -> new SwabFilter().config("swab-bits", bad)).isInstanceOf(ConfigException.class)
          .hasMessageContaining("swab-bits");
    }
  }

  @Test
  @Tag("slow")
  void makesThePatternPluginLittleEndianForNbdcopy() throws Exception {
    Tools.require("nbdcopy");
    var pattern = Catalog.plugin("pattern");
    pattern.config("size", "1M");
    SwabFilter filter = new SwabFilter();
    filter.config("swab-bits", "64");
    try (TestServer server = new TestServer(List.of(filter), pattern, ServerConfig.defaults())) {
      Path out = dir.resolve("little-endian.img");
      Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
      ByteBuffer copy = ByteBuffer.wrap(Files.readAllBytes(out)).order(ByteOrder.LITTLE_ENDIAN);
      assertThat(copy.remaining()).isEqualTo(1 << 20);
      for (int at = 0; at < copy.limit(); at += 8) {
        if (copy.getLong(at) != at) {
          throw new AssertionError("word at " + at + " reads " + Long.toHexString(copy.getLong(at)));
        }
      }
    }
  }
}
