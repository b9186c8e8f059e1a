package io.jnbd.filters.nozero;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
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
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NozeroFilterTest {
  @Test
  void rejectsBadValuesNamingTheKey() {
    NozeroFilter nozero = new NozeroFilter();
    assertThatThrownBy(() -> nozero.config("zeromode", "bogus")).isInstanceOf(ConfigException.class)
        .hasMessage("nozero: zeromode: must be none|emulate|notrim|plugin: 'bogus'");
    assertThatThrownBy(() -> nozero.config("fastzeromode", "fast")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("nozero: fastzeromode");
    assertThat(nozero.config("size", "1M")).isFalse();
  }

  private static Stack stack(ArrayDisk disk, String... keyValues) {
    return Stacks.configured(Layers.filter("nozero", keyValues), disk);
  }

  @Test
  void passingZeroesBelowNeedsALayerThatZeroes() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    disk.zero = Support.NONE;
    assertThatThrownBy(() -> stack(disk, "zeromode=plugin").open(false, ""))
        .isInstanceOf(NbdException.class).hasMessageContaining("zeromode=plugin");
    stack(disk, "zeromode=plugin").open(true, "").close();
    stack(disk, "zeromode=emulate").open(false, "").close();
  }

  /** A filter above may call zero on an emulating nozero: the zeroes are written, with FUA. */
  @Test
  void emulatesZeroForTheLayerAbove() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Arrays.fill(disk.data, (byte) 1);
    try (Export export = stack(disk, "zeromode=emulate").open(false, "")) {
      assertThat(export.canZero()).isEqualTo(Support.EMULATE);
      export.zero(100, 5000, Flags.FUA | Flags.MAY_TRIM);
      assertThatThrownBy(() -> export.zero(0, 10, Flags.FAST_ZERO))
          .isInstanceOf(NbdException.class).extracting(e -> ((NbdException) e).errno()).isEqualTo(Errno.ENOTSUP);
    }
    assertThat(disk.data[99]).isEqualTo((byte) 1);
    assertThat(Arrays.copyOfRange(disk.data, 100, 5100)).isEqualTo(new byte[5000]);
    assertThat(disk.data[5100]).isEqualTo((byte) 1);
    assertThat(disk.nativeZeroes.get()).isZero();
    assertThat(disk.fuaWrites.get()).isEqualTo(1);
  }

  /**
   * nbdsh sends a zero, a zero allowing holes and a fast zero; what is advertised and what
   * reaches the disk (native zeroes, and the flags of the last one) follow the modes.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = ';', value = {
      "zeromode=none;                        False; False; -; 0; -1",
      "zeromode=emulate;                     True;  True;  ENOTSUP; 0; -1",
      "zeromode=emulate fastzeromode=none;   True;  False; -; 0; -1",
      "zeromode=notrim;                      True;  True;  ok; 3; 4",
      "zeromode=plugin;                      True;  True;  ok; 3; 6",
      "zeromode=plugin fastzeromode=slow;    True;  True;  ENOTSUP; 2; 2",
      "zeromode=plugin fastzeromode=ignore;  True;  True;  ok; 3; 2",
      "zeromode=plugin fastzeromode=none;    True;  False; -; 2; 2"})
  @Tag("slow")
  void nbdshSeesTheModes(String args, String canZero, String canFastZero, String fastZero, int nativeZeroes, int lastFlags) throws Exception {
    Tools.require("nbdsh");
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Arrays.fill(disk.data, (byte) 1);
    try (TestServer server = new TestServer(List.of(Layers.filter("nozero", args.split(" "))), disk, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), String.join("\n",
              "import errno",
              "assert h.can_zero() == " + canZero + ", h.can_zero()",
              "assert h.can_fast_zero() == " + canFastZero + ", h.can_fast_zero()",
              "if h.can_zero():",
              "    h.zero(4096, 0, nbd.CMD_FLAG_NO_HOLE)",
              "    h.zero(4096, 4096)",
              "else:",
              "    h.pwrite(bytes(8192), 0)",
              "assert h.pread(8192, 0) == bytes(8192)",
              "if h.can_fast_zero():",
              "    try:",
              "        h.zero(4096, 8192, nbd.CMD_FLAG_FAST_ZERO)",
              "        outcome = 'ok'",
              "    except nbd.Error as e:",
              "        outcome = errno.errorcode[e.errnum]",
              "    assert outcome == '" + fastZero + "', outcome"))
          .assertSuccess();
    }
    assertThat(disk.nativeZeroes.get()).isEqualTo(nativeZeroes);
    // MAY_TRIM is 2 and FAST_ZERO 4: notrim drops the first, ignore the second.
    assertThat(disk.lastZeroFlags).isEqualTo(lastFlags);
  }
}
