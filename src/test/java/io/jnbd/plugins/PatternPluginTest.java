package io.jnbd.plugins;

import static io.jnbd.plugins.Plugins.configured;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class PatternPluginTest {
  /** The definition, one byte at a time, independent of the plugin's word-filling code. */
  private static byte expected(long offset) {
    byte[] word = ByteBuffer.allocate(8).putLong(offset - offset % 8).array();
    return word[(int) (offset % 8)];
  }

  @Test
  void everyWordHoldsItsOffsetBigEndian() throws Exception {
    try (Export export = configured("pattern", "size=1M").open(false, "")) {
      ByteBuffer buffer = ByteBuffer.allocate(64);
      export.pread(buffer, 0x1000);
      assertThat(buffer.flip().getLong(0)).isEqualTo(0x1000);
      assertThat(buffer.getLong(8)).isEqualTo(0x1008);
      assertThat(export.canWrite()).isFalse();
      assertThat(export.canMultiConn()).isTrue();
      assertThat(export.size()).isEqualTo(1 << 20);
    }
  }

  @Test
  void oddOffsetsAndLengthsMatchTheDefinition() throws Exception {
    try (Export export = configured("pattern", "size=1T").open(false, "")) {
      long[] offsets = {0, 1, 3, 7, 8, 9, 4095, (1L << 40) - 100, 0x0123456789L};
      int[] lengths = {1, 2, 7, 8, 9, 15, 17, 63, 100};
      for (long offset : offsets) {
        for (int length : lengths) {
          for (boolean direct : new boolean[] {false, true}) {
            ByteBuffer buffer = direct ? ByteBuffer.allocateDirect(length + 6) : ByteBuffer.allocate(length + 6);
            // Reading into the middle of a little-endian buffer must neither overrun nor change its order.
            buffer.order(ByteOrder.LITTLE_ENDIAN).position(3).limit(3 + length);
            export.pread(buffer, offset);
            assertThat(buffer.position()).isEqualTo(3 + length);
            assertThat(buffer.order()).isEqualTo(ByteOrder.LITTLE_ENDIAN);
            buffer.limit(buffer.capacity());
            for (int i = 0; i < length; i++) {
              assertThat(buffer.get(3 + i)).as("offset %d + %d", offset, i).isEqualTo(expected(offset + i));
            }
            assertThat(buffer.get(3 + length)).isZero();
            assertThat(buffer.get(2)).isZero();
          }
        }
      }
    }
  }

  @Test
  void sizeIsRequired() {
    assertThatThrownBy(() -> configured("pattern")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("pattern: ");
    assertThatThrownBy(() -> configured("pattern", "size=-1")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("pattern: size");
  }
}
