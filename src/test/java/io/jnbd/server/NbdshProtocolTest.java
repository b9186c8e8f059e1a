package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Support;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Protocol corners exercised through libnbd's Python binding (nbdsh), an independent client
 * implementation. Strict mode is off where the test sends requests libnbd would refuse itself,
 * so the server's own checks are what answer.
 */
@Tag("slow")
class NbdshProtocolTest {
  private static final int SIZE = 1 << 20;

  private static final String PRELUDE = """
      import errno, nbd, os
      def connect(structured=True, meta=True, name=""):
          h = nbd.NBD()
          h.set_request_structured_replies(structured)
          if meta:
              h.add_meta_context("base:allocation")
          h.set_export_name(name)
          h.connect_uri(os.environ["URI"])
          return h
      def fails_with(code, fn, *args):
          try:
              fn(*args)
          except nbd.Error as e:
              assert e.errnum == code, "expected %s, got %s (%s)" % (errno.errorcode[code], e.errno, e.string)
              return
          raise AssertionError("expected %s, but the call succeeded" % errno.errorcode[code])
      """;

  @BeforeAll
  static void clientInstalled() {
    Tools.require("nbdsh");
  }

  private static void runScript(TestServer server, String script) {
    Tools.run(List.of("nbdsh", "-c", PRELUDE + script), Map.of("URI", server.uri()), 120).assertSuccess();
  }

  @Test
  void structuredRepliesReadsWritesAndFlags() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(SIZE))) {
      runScript(server, """
          h = connect()
          assert h.get_structured_replies_negotiated()
          assert h.get_size() == %d
          for cap in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_cache",
                      "can_multi_conn", "can_df"):
              assert getattr(h, cap)(), cap
          assert not h.is_read_only()
          h.pwrite(b"abc" * 1000, 4096)
          assert h.pread(3000, 4096) == b"abc" * 1000
          h.pwrite(b"z" * 512, 0, nbd.CMD_FLAG_FUA)
          h.flush()
          chunks = []
          h.pread_structured(512, 0, lambda buf, offset, status, err: chunks.append((offset, status)), nbd.CMD_FLAG_DF)
          assert chunks == [(0, nbd.READ_DATA)], chunks
          assert h.pread(512, 0) == b"z" * 512
          h.shutdown()
          """.formatted(SIZE));
    }
  }

  @Test
  void simpleRepliesStillWork() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(SIZE))) {
      runScript(server, """
          h = connect(structured=False, meta=False)
          assert not h.get_structured_replies_negotiated()
          assert not h.can_df()
          h.pwrite(b"q" * 65536, 65536)
          assert h.pread(65536, 65536) == b"q" * 65536
          assert h.pread(4096, 0) == bytes(4096)
          h.set_strict_mode(0)
          fails_with(errno.EINVAL, h.pread, 4096, %d)
          h.shutdown()
          """.formatted(SIZE));
    }
  }

  @Test
  void blockStatusReportsHolesAndData() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(SIZE))) {
      runScript(server, """
          h = connect()
          assert h.can_meta_context("base:allocation")
          h.pwrite(b"d" * 4096, 8192)
          seen = []
          def collect(context, offset, entries, err):
              assert context == "base:allocation"
              seen.extend(zip(entries[0::2], entries[1::2]))
          h.block_status(65536, 0, collect)
          assert seen == [(8192, 3), (4096, 0), (65536 - 12288, 3)], seen
          seen.clear()
          h.block_status(65536, 0, collect, nbd.CMD_FLAG_REQ_ONE)
          assert seen == [(8192, 3)], seen
          h.shutdown()
          """);
    }
  }

  @Test
  void blockStatusWithoutContextIsRefused() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(SIZE))) {
      runScript(server, """
          h = connect(meta=False)
          h.set_strict_mode(0)
          fails_with(errno.EINVAL, h.block_status, 4096, 0, lambda *a: 0)
          h.shutdown()
          """);
    }
  }

  @Test
  void zeroTrimAndCacheReachTheExport() throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    try (TestServer server = new TestServer(disk)) {
      runScript(server, """
          h = connect()
          h.pwrite(b"x" * 65536, 0)
          h.zero(4096, 4096)
          h.zero(4096, 8192, nbd.CMD_FLAG_FAST_ZERO)
          h.trim(8192, 12288)
          h.cache(65536, 0)
          data = h.pread(65536, 0)
          assert data[:4096] == b"x" * 4096 and data[4096:20480] == bytes(16384) and data[20480:] == b"x" * (65536 - 20480)
          h.shutdown()
          """);
    }
    assertThat(disk.nativeZeroes.get()).isEqualTo(2);
    assertThat(disk.caches.get()).isEqualTo(1);
  }

  @Test
  void emulatedZeroWritesZeroesButRefusesFastZero() throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    disk.zero = Support.EMULATE;
    disk.fastZero = false;
    try (TestServer server = new TestServer(disk)) {
      runScript(server, """
          h = connect()
          assert h.can_zero() and not h.can_fast_zero()
          h.pwrite(b"x" * 8192, 0)
          h.zero(8192, 0)
          assert h.pread(8192, 0) == bytes(8192)
          h.zero(4096, 0, nbd.CMD_FLAG_FUA)
          h.set_strict_mode(0)
          fails_with(errno.EINVAL, h.zero, 4096, 0, nbd.CMD_FLAG_FAST_ZERO)
          h.shutdown()
          """);
    }
    assertThat(disk.nativeZeroes.get()).isZero();
    assertThat(disk.fuaWrites.get()).as("the zeroes of a FUA zero are written with FUA").isEqualTo(1);
  }

  @Test
  void emulatedFuaFlushesAfterTheWrite() throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    disk.fua = Support.EMULATE;
    try (TestServer server = new TestServer(disk)) {
      runScript(server, """
          h = connect()
          assert h.can_fua()
          h.pwrite(b"f" * 512, 0, nbd.CMD_FLAG_FUA)
          h.shutdown()
          """);
    }
    assertThat(disk.fuaWrites.get()).isZero();
    assertThat(disk.flushes.get()).isEqualTo(1);
  }

  @Test
  void outOfRangeAndUnadvertisedRequestsGetTheRightErrors() throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    disk.trim = false;
    disk.flush = false;
    disk.fua = Support.NONE;
    try (TestServer server = new TestServer(disk)) {
      runScript(server, """
          h = connect()
          assert not h.can_trim() and not h.can_flush() and not h.can_fua()
          h.set_strict_mode(0)
          fails_with(errno.EINVAL, h.pread, 4096, %1$d - 1024)
          fails_with(errno.ENOSPC, h.pwrite, b"x" * 4096, %1$d - 1024)
          fails_with(errno.ENOSPC, h.zero, 4096, %1$d)
          fails_with(errno.EINVAL, h.trim, 4096, 0)
          fails_with(errno.EINVAL, h.flush)
          fails_with(errno.EINVAL, h.pwrite, b"x", 0, nbd.CMD_FLAG_FUA)
          fails_with(errno.EINVAL, h.pread, 512, 0, nbd.CMD_FLAG_REQ_ONE)
          # the connection is still usable after all of that
          h.pwrite(b"ok", 0)
          assert h.pread(2, 0) == b"ok"
          h.shutdown()
          """.formatted(SIZE));
    }
  }

  @Test
  void readOnlyServerRefusesWritesWithEperm() throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults().withReadOnly(true))) {
      runScript(server, """
          h = connect()
          assert h.is_read_only() and h.can_multi_conn()
          assert not h.can_trim() and not h.can_zero()
          h.set_strict_mode(0)
          fails_with(errno.EPERM, h.pwrite, b"x" * 512, 0)
          fails_with(errno.EPERM, h.zero, 512, 0)
          fails_with(errno.EPERM, h.trim, 512, 0)
          assert h.pread(512, 0) == bytes(512)
          h.shutdown()
          """);
    }
  }

  @Test
  void manyRequestsInFlightAllGetTheirOwnData() throws Exception {
    ArrayDisk disk = new ArrayDisk(SIZE);
    for (int i = 0; i < SIZE; i++) {
      disk.data[i] = (byte) (i / 4096 * 7);
    }
    try (TestServer server = new TestServer(disk)) {
      runScript(server, """
          h = connect()
          buffers = {}
          for block in range(256):
              buf = nbd.Buffer(4096)
              buffers[h.aio_pread(buf, block * 4096)] = (block, buf)
          while h.aio_in_flight() > 0:
              h.poll(-1)
          for cookie, (block, buf) in buffers.items():
              assert h.aio_command_completed(cookie)
              assert buf.to_bytearray() == bytes([block * 7 % 256]) * 4096, block
          h.shutdown()
          """);
    }
  }

  @Test
  void listingAndExportNames() throws Exception {
    try (TestServer server = new TestServer(List.of(), new ArrayDisk(SIZE), ServerConfig.defaults().withExportName("disk0"))) {
      runScript(server, """
          h = nbd.NBD()
          h.set_opt_mode(True)
          h.connect_uri(os.environ["URI"])
          names = []
          h.opt_list(lambda name, description: names.append(name))
          assert names == ["disk0"], names
          h.opt_abort()
          h = nbd.NBD()
          h.set_full_info(True)
          h.connect_uri(os.environ["URI"])
          assert h.get_canonical_export_name() == "disk0", h.get_canonical_export_name()
          h.shutdown()
          h = nbd.NBD()
          h.set_export_name("missing")
          try:
              h.connect_uri(os.environ["URI"].replace("nbd+unix:///", "nbd+unix:///missing"))
              raise AssertionError("opening a missing export should fail")
          except nbd.Error:
              pass
          """);
    }
  }
}
