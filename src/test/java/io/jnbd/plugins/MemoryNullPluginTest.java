package io.jnbd.plugins;

import static io.jnbd.plugins.Plugins.configured;
import static io.jnbd.plugins.Plugins.map;
import static io.jnbd.plugins.Plugins.write;
import static io.jnbd.testing.Exports.read;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import io.jnbd.server.Catalog;
import org.junit.jupiter.api.Test;

class MemoryNullPluginTest {
  private static final int PAGE = SparseStore.DEFAULT_PAGE_SIZE;

  @Test
  void memoryIsSharedBetweenConnectionsAndSparse() throws Exception {
    Plugin plugin = configured("memory", "size=1T");
    try (Export first = plugin.open(false, ""); Export second = plugin.open(false, "")) {
      assertThat(first.size()).isEqualTo(1L << 40);
      write(first, (1L << 40) - 2, new byte[] {4, 5});
      assertThat(read(second, (1L << 40) - 4, 4)).containsExactly(0, 0, 4, 5);
      assertThat(map(second, (1L << 40) - 2 * PAGE, 2 * PAGE)).isEqualTo("[3:" + PAGE + ", 0:" + PAGE + "]");
      second.zero((1L << 40) - PAGE, PAGE, Flags.MAY_TRIM);
      assertThat(map(first, (1L << 40) - 2 * PAGE, 2 * PAGE)).isEqualTo("[3:" + 2 * PAGE + "]");
    }
  }

  @Test
  void memoryTrimAndPartialZeroReadBackAsZeroes() throws Exception {
    Plugin plugin = configured("memory", "size=1M");
    try (Export export = plugin.open(false, "")) {
      byte[] ones = new byte[3 * PAGE];
      java.util.Arrays.fill(ones, (byte) 1);
      write(export, 0, ones);
      export.trim(PAGE, PAGE, 0);
      export.zero(10, 20, 0);
      byte[] back = read(export, 0, 3 * PAGE);
      assertThat(back[9]).isEqualTo((byte) 1);
      assertThat(java.util.Arrays.copyOfRange(back, 10, 30)).containsOnly(0);
      assertThat(back[30]).isEqualTo((byte) 1);
      assertThat(java.util.Arrays.copyOfRange(back, PAGE, 2 * PAGE)).containsOnly(0);
      assertThat(back[2 * PAGE]).isEqualTo((byte) 1);
      assertThat(map(export, 0, 3 * PAGE)).isEqualTo("[0:" + PAGE + ", 3:" + PAGE + ", 0:" + PAGE + "]");
    }
  }

  @Test
  void memoryAdvertisesWhatItDoes() throws Exception {
    Plugin plugin = configured("memory", "size=4k");
    try (Export writable = plugin.open(false, ""); Export readOnly = plugin.open(true, "")) {
      assertThat(writable.canWrite()).isTrue();
      assertThat(readOnly.canWrite()).isFalse();
      assertThat(writable.canFlush()).isTrue();
      assertThat(writable.canFua()).isEqualTo(Support.NATIVE);
      assertThat(writable.canTrim()).isTrue();
      assertThat(writable.canZero()).isEqualTo(Support.NATIVE);
      assertThat(writable.canFastZero()).isTrue();
      assertThat(writable.canExtents()).isTrue();
      assertThat(writable.canCache()).isEqualTo(Support.NATIVE);
      assertThat(writable.canMultiConn()).isTrue();
    }
  }

  @Test
  void memoryConfigErrorsNameThePluginAndKey() {
    assertThatThrownBy(() -> configured("memory", "sise=1G"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("memory: ").hasMessageContaining("sise");
    assertThatThrownBy(() -> configured("memory", "size=12Q"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("memory: size");
    assertThatThrownBy(() -> configured("memory"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("size");
    assertThat(Catalog.plugin("memory").magicConfigKey()).isEqualTo("size");
  }

  @Test
  void nullReadsZeroesDiscardsWritesAndIsAllHole() throws Exception {
    Plugin plugin = configured("null", "size=1M");
    try (Export export = plugin.open(false, "")) {
      assertThat(export.size()).isEqualTo(1 << 20);
      write(export, 100, new byte[] {1, 2, 3});
      assertThat(read(export, 0, 200_000)).containsOnly(0);
      assertThat(map(export, 0, 1 << 20)).isEqualTo("[3:1048576]");
      export.zero(0, 10, Flags.FAST_ZERO);
      export.trim(0, 10, 0);
      export.flush();
      assertThat(export.canMultiConn()).isTrue();
      assertThat(export.canWrite()).isTrue();
    }
    assertThat(configured("null").open(true, "").size()).isZero();
    assertThatThrownBy(() -> configured("null", "file=x"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("null: ");
  }
}
