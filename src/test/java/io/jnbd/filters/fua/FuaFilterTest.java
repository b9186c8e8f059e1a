package io.jnbd.filters.fua;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Layers;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class FuaFilterTest {
  @Test
  void rejectsBadValuesNamingTheKey() {
    FuaFilter fua = new FuaFilter();
    assertThatThrownBy(() -> fua.config("fuamode", "sometimes")).isInstanceOf(ConfigException.class)
        .hasMessage("fua: fuamode: must be none|emulate|native|force|pass|discard: 'sometimes'");
    assertThat(fua.config("size", "1M")).isFalse();
  }

  private static Stack stack(ArrayDisk disk, String mode) {
    return Stacks.configured(Layers.filter("fua", "fuamode=" + mode), disk);
  }

  @Test
  void refusesModesTheLayerBelowCannotBack() throws Exception {
    ArrayDisk noFlush = new ArrayDisk(4096);
    noFlush.flush = false;
    noFlush.fua = Support.NONE;
    assertThatThrownBy(() -> stack(noFlush, "emulate").open(false, "")).isInstanceOf(NbdException.class).hasMessageContaining("fuamode=emulate needs flush");
    assertThatThrownBy(() -> stack(noFlush, "native").open(false, "")).isInstanceOf(NbdException.class).hasMessageContaining("fuamode=native needs FUA");
    assertThatThrownBy(() -> stack(noFlush, "force").open(false, "")).isInstanceOf(NbdException.class).hasMessageContaining("fuamode=force needs FUA");
    try (Export discarding = stack(noFlush, "discard").open(false, "")) {
      assertThat(discarding.canFlush()).isTrue();
      discarding.flush();
    }
  }

  /** Native FUA over a layer that only emulates it: the write, then a flush, never a dropped flag. */
  @Test
  void nativeOverAnEmulatingLayerFlushesAfterTheWrite() throws Exception {
    ArrayDisk disk = new ArrayDisk(4096);
    disk.fua = Support.EMULATE;
    try (Export export = stack(disk, "native").open(false, "")) {
      assertThat(export.canFua()).isEqualTo(Support.NATIVE);
      export.pwrite(ByteBuffer.wrap(new byte[] {1}), 0, Flags.FUA);
    }
    assertThat(disk.fuaWrites.get()).isZero();
    assertThat(disk.flushes.get()).isEqualTo(1);
  }

  /**
   * nbdsh writes once with FUA (where advertised), once without, then flushes: what reaches the
   * disk (writes flagged FUA, flushes) follows the mode.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "none,    False, 0, 1",
      "emulate, True,  0, 2",
      "native,  True,  1, 1",
      "force,   True,  2, 0",
      "pass,    True,  1, 1",
      "discard, True,  0, 0"})
  @Tag("slow")
  void nbdshSeesTheModes(String mode, String canFua, int fuaWrites, int flushes) throws Exception {
    Tools.require("nbdsh");
    ArrayDisk disk = new ArrayDisk(1 << 20);
    try (TestServer server = new TestServer(List.of(Layers.filter("fua", "fuamode=" + mode)), disk, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), String.join("\n",
              "assert h.can_fua() == " + canFua + ", h.can_fua()",
              "assert h.can_flush()",
              "h.pwrite(b'a', 0, nbd.CMD_FLAG_FUA if h.can_fua() else 0)",
              "h.pwrite(b'b', 1)",
              "h.flush()",
              "assert h.pread(2, 0) == b'ab'"))
          .assertSuccess();
    }
    assertThat(disk.fuaWrites.get()).as("writes with FUA").isEqualTo(fuaWrites);
    assertThat(disk.flushes.get()).as("flushes").isEqualTo(flushes);
  }
}
