package io.jnbd.filters.protect;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.filters.protect.ProtectedRanges.Range;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class ProtectFilterTest {
  private static List<Range> ranges(String... values) {
    List<Range> given = new ArrayList<>();
    for (String value : values) {
      given.addAll(ProtectedRanges.parse("protect", value));
    }
    return new ProtectedRanges(given).ranges();
  }

  @Test
  void parsesRangesAsNbdkitDoes() {
    assertThat(ranges("0-1023")).containsExactly(new Range(0, 1024));
    assertThat(ranges("0x1000-0x1fff", "010-017")).containsExactly(new Range(8, 16), new Range(4096, 8192));
    assertThat(ranges("1024-")).containsExactly(new Range(1024, Long.MAX_VALUE));
    assertThat(ranges("-1023")).containsExactly(new Range(0, 1024));
    assertThat(ranges("~1000-1999")).containsExactly(new Range(0, 1000), new Range(2000, Long.MAX_VALUE));
    assertThat(ranges("~-")).isEmpty();
    assertThat(ranges("0-99", "100-199", "150-300")).as("merged").containsExactly(new Range(0, 301));
  }

  @Test
  void aBadRangeIsAConfigError() {
    for (String bad : List.of("5", "", "1k-2k", "2000-1000", "-5-10", "0x-1", "1-99999999999999999999")) {
      assertThatThrownBy(() -> new ProtectFilter().config("protect", bad)).as(bad)
          .isInstanceOf(ConfigException.class).hasMessageContaining("protect");
    }
  }

  @Test
  void theProtectedPartsOfARequest() {
    ProtectedRanges ranges = new ProtectedRanges(List.of(new Range(300, 400), new Range(100, 200)));
    assertThat(ranges.within(150, 200)).containsExactly(new Range(150, 200), new Range(300, 350));
    assertThat(ranges.within(200, 100)).isEmpty();
  }

  private static void assertRefused(ThrowingCallable call) {
    assertThatThrownBy(call).isInstanceOf(NbdException.class)
        .extracting(e -> ((NbdException) e).errno()).isEqualTo(Errno.EPERM);
  }

  @Test
  void refusesOnlyChangesToProtectedBytes() throws Exception {
    ArrayDisk disk = new ArrayDisk(4 << 20);
    disk.data[1024] = 1;
    disk.data[(2 << 20) + 5] = 9;
    try (Export export = Stacks.configured(new ProtectFilter(), disk, "protect=1000-4095", "protect=0x100000-0x300000").open(false, "")) {
      export.pwrite(ByteBuffer.wrap(new byte[] {5, 0}), 999, 0);
      assertThat(disk.data[999]).isEqualTo((byte) 5);
      export.pwrite(ByteBuffer.wrap(new byte[] {0, 0, 1, 0}), 1022, 0);
      assertRefused(() -> export.pwrite(ByteBuffer.wrap(new byte[] {5, 0, 2}), 1022, 0));
      assertThat(disk.data[1022]).as("a refused write changes nothing").isZero();
      assertRefused(() -> export.pwrite(ByteBuffer.wrap(new byte[] {1, 1}), 4095, 0));
      export.pwrite(ByteBuffer.wrap(new byte[] {0, 1}), 4095, 0);
      assertThat(disk.data[4096]).isEqualTo((byte) 1);

      // Zero and trim pass where the protected bytes are zero already, wherever they start.
      export.zero(500, 524, 0);
      export.trim(900, 124, 0);
      assertRefused(() -> export.zero(200, 900, 0));
      assertRefused(() -> export.trim(1024, 1, 0));
      assertThat(disk.data[1024]).isEqualTo((byte) 1);
      // Past the first chunk that the check reads.
      assertRefused(() -> export.zero((1 << 20) - 10, 2 << 20, 0));
      export.zero((2 << 20) + 6, 1 << 20, 0);
    }
  }

  @Test
  @Tag("slow")
  void aClientGetsEpermForAChangeAndMayRewriteWhatIsThere() throws Exception {
    Tools.require("nbdsh");
    ArrayDisk disk = new ArrayDisk(1 << 20);
    disk.data[10] = 42;
    ProtectFilter filter = new ProtectFilter();
    filter.config("protect", "0-511");
    try (TestServer server = new TestServer(List.of(filter), disk, ServerConfig.defaults())) {
      String script = """
          import errno
          def attempt(f):
              try:
                  f()
                  print("ok")
              except nbd.Error as e:
                  print(errno.errorcode[e.errnum])
          attempt(lambda: h.pwrite(h.pread(512, 0), 0))
          attempt(lambda: h.pwrite(b"x" * 512, 0))
          attempt(lambda: h.zero(512, 0))
          attempt(lambda: h.pwrite(b"x" * 512, 512))
          """;
      String stdout = Tools.run(List.of("nbdsh", "-u", server.uri(), "-c", script), Map.of(), 60).assertSuccess().stdout();
      assertThat(stdout.lines()).containsExactly("ok", "EPERM", "EPERM", "ok");
      assertThat(disk.data[10]).isEqualTo((byte) 42);
    }
  }

  @Test
  void readsOfProtectedBytesAreHandedOverAndWritesStillChecked() throws Exception {
    ArrayDisk disk = new ArrayDisk(64 * 1024);
    disk.data[100] = 3;
    disk.handsOver = true;
    try (Export export = Stacks.configured(new ProtectFilter(), disk, "protect=0-4095").open(false, "")) {
      assertThat(Exports.handedOver(export, 0, 4096)[100]).isEqualTo((byte) 3);
      assertRefused(() -> export.pwrite(ByteBuffer.wrap(new byte[] {4}), 100, 0));
      assertThat(disk.data[100]).isEqualTo((byte) 3);
    }
  }
}
