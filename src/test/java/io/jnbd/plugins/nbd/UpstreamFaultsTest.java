package io.jnbd.plugins.nbd;

import static io.jnbd.plugins.nbd.ScriptedUpstream.chunk;
import static io.jnbd.plugins.nbd.ScriptedUpstream.simple;
import static io.jnbd.testing.Exports.read;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.protocol.Nbd.TransmissionFlag;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Replies;
import io.jnbd.protocol.Request;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Wire;
import io.jnbd.server.tls.ClientTls;
import io.jnbd.testing.Layers;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The nbd plugin against an upstream server that breaks the protocol or goes away: the client
 * gets EIO (or the upstream's own error), never a hang or wrong bytes, and a broken connection
 * fails every later request at once.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class UpstreamFaultsTest {
  private static final int SIZE = 1 << 20;
  private static final int FLAGS = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH;

  /** An OFFSET_DATA chunk carrying {@code bytes} at {@code offset}. */
  private static ByteBuffer data(int flags, long cookie, long offset, byte[] bytes) {
    ByteBuffer payload = ByteBuffer.allocate(8 + bytes.length).putLong(offset).put(bytes).flip();
    return chunk(flags, Chunk.OFFSET_DATA, cookie, payload);
  }

  private static ByteBuffer hole(int flags, long cookie, long offset, int length) {
    return chunk(flags, Chunk.OFFSET_HOLE, cookie, ByteBuffer.allocate(12).putLong(offset).putInt(length).flip());
  }

  private static byte[] filled(int length, int value) {
    byte[] bytes = new byte[length];
    Arrays.fill(bytes, (byte) value);
    return bytes;
  }

  private static void assertErrno(Errno errno, ThrowingCallable call) {
    assertThatThrownBy(call).isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(errno));
  }

  /** Each read's first reply is what {@code badReply} writes; later requests get good replies. */
  private static void assertBreaksTheConnection(ScriptedUpstream.Script badReply) throws Exception {
    int[] requests = {0};
    ScriptedUpstream.Script script = (request, wire) -> {
      if (requests[0]++ == 0) {
        badReply.request(request, wire);
      } else {
        wire.write(simple(0, request.cookie()));
      }
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        assertErrno(Errno.EIO, () -> read(export, 0, 4096));
        // Nothing later on the stream can be trusted: later requests fail without being sent.
        assertErrno(Errno.EIO, export::flush);
        assertThat(upstream.received).hasSize(1);
      }
      plugin.unload();
    }
  }

  @Test
  void aReplyWithABadMagicBreaksTheConnection() throws Exception {
    assertBreaksTheConnection((request, wire) -> wire.write(ByteBuffer.wrap(new byte[] {1, 2, 3, 4, 5, 6, 7, 8})));
  }

  @Test
  void aReplyToARequestNeverSentBreaksTheConnection() throws Exception {
    assertBreaksTheConnection((request, wire) -> wire.write(simple(0, request.cookie() + 1000)));
  }

  @Test
  void dataOutsideTheReadBreaksTheConnection() throws Exception {
    assertBreaksTheConnection((request, wire) ->
        wire.write(data(Chunk.FLAG_DONE, request.cookie(), request.offset() + 1, filled(4096, 9))));
  }

  @Test
  void overlappingDataBreaksTheConnection() throws Exception {
    assertBreaksTheConnection((request, wire) -> {
      wire.write(data(0, request.cookie(), 0, filled(2048, 1)));
      wire.write(data(Chunk.FLAG_DONE, request.cookie(), 1024, filled(2048, 2)));
    });
  }

  @Test
  void aHugeChunkBreaksTheConnection() throws Exception {
    assertBreaksTheConnection((request, wire) -> {
      ByteBuffer header = ByteBuffer.allocate(Nbd.CHUNK_HEADER_SIZE);
      Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.BLOCK_STATUS, request.cookie(), Integer.MAX_VALUE);
      wire.write(header.flip());
    });
  }

  @Test
  void anUpstreamThatClosesMidRequestFailsItWithEio() throws Exception {
    assertBreaksTheConnection((request, wire) -> {
      wire.write(data(0, request.cookie(), 0, filled(100, 1)));
      wire.close();
    });
  }

  /** nbdsh through jnbd: the broken upstream connection costs its client EIO, and the next client is served. */
  @Test
  void aRealClientGetsEioAndTheServerCarriesOn() throws Exception {
    Tools.require("nbdsh");
    int[] requests = {0};
    ScriptedUpstream.Script script = (request, wire) -> {
      if (requests[0]++ == 0) {
        wire.write(ByteBuffer.wrap(new byte[] {0x25, 0x60, (byte) 0x95, 0x13}));
      } else {
        wire.write(data(Chunk.FLAG_DONE, request.cookie(), request.offset(), filled((int) request.length(), 2)));
      }
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script);
        TestServer server = new TestServer(List.of(), Layers.plugin("nbd", "socket=" + upstream.socket()), ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), String.join("\n",
          "import errno",
          "try:",
          "    h.pread(512, 0)",
          "    assert False, 'read succeeded'",
          "except nbd.Error as e:",
          "    assert e.errnum == errno.EIO, e",
          "try:",
          "    h.flush()",
          "    assert False, 'flush succeeded'",
          "except nbd.Error as e:",
          "    assert e.errnum == errno.EIO, e")).assertSuccess();
      Tools.nbdsh(server.uri(), "assert h.pread(512, 0) == b'\\x02' * 512").assertSuccess();
    }
  }

  @Test
  void aReadThatEndsShortFailsAloneAndTheConnectionGoesOn() throws Exception {
    int[] requests = {0};
    ScriptedUpstream.Script script = (request, wire) -> {
      if (requests[0]++ == 0) {
        wire.write(data(Chunk.FLAG_DONE, request.cookie(), request.offset(), filled(2048, 1)));
      } else {
        wire.write(data(Chunk.FLAG_DONE, request.cookie(), request.offset(), filled((int) request.length(), 2)));
      }
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        assertThatThrownBy(() -> read(export, 0, 4096))
            .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
            .hasMessageContaining("sent 2048 of the 4096 bytes");
        assertThat(read(export, 4096, 4096)).isEqualTo(filled(4096, 2));
      }
      plugin.unload();
    }
  }

  @Test
  void chunksInAnyOrderWithHolesMakeTheRead() throws Exception {
    ScriptedUpstream.Script script = (request, wire) -> {
      long at = request.offset();
      wire.write(data(0, request.cookie(), at + 3000, filled(1096, 3)));
      wire.write(hole(0, request.cookie(), at + 1000, 2000));
      wire.write(data(0, request.cookie(), at, filled(1000, 1)));
      wire.write(chunk(Chunk.FLAG_DONE, Chunk.NONE, request.cookie(), ByteBuffer.allocate(0)));
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        ByteBuffer buffer = ByteBuffer.allocate(4096);
        Arrays.fill(buffer.array(), (byte) 0x7f);
        export.pread(buffer, 8192);
        byte[] expected = new byte[4096];
        Arrays.fill(expected, 0, 1000, (byte) 1);
        Arrays.fill(expected, 3000, 4096, (byte) 3);
        assertThat(buffer.array()).isEqualTo(expected);
      }
      plugin.unload();
    }
  }

  @Test
  void anErrorChunkGivesItsErrnoAndMessage() throws Exception {
    ScriptedUpstream.Script script = (request, wire) -> {
      byte[] message = "disk full".getBytes(StandardCharsets.UTF_8);
      ByteBuffer payload = ByteBuffer.allocate(6 + message.length).putInt(28).putShort((short) message.length).put(message).flip();
      wire.write(data(0, request.cookie(), request.offset(), filled(10, 1)));
      wire.write(chunk(Chunk.FLAG_DONE, Chunk.ERROR, request.cookie(), payload));
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        assertThatThrownBy(() -> read(export, 0, 4096))
            .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC))
            .hasMessageContaining("disk full");
        assertThatThrownBy(() -> read(export, 0, 4096)).hasMessageContaining("disk full");
      }
      plugin.unload();
    }
  }

  @Test
  void aServerWithoutGoIsReachedThroughExportName() throws Exception {
    ScriptedUpstream.Script script = new ScriptedUpstream.Script() {
      @Override
      public boolean option(int option, Wire wire) throws IOException {
        if (option == Opt.GO || option == Opt.STRUCTURED_REPLY) {
          wire.write(Replies.optionError(option, Rep.ERR_UNSUP, "old server"));
          return true;
        }
        return false;
      }

      @Override
      public void request(Request request, Wire wire) throws IOException {
        wire.write(simple(0, request.cookie()));
        if (request.type() == Nbd.Cmd.READ) {
          wire.write(ByteBuffer.wrap(filled((int) request.length(), 5)));
        }
      }
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        assertThat(export.size()).isEqualTo(SIZE);
        assertThat(export.canExtents()).as("no structured replies, no block status").isFalse();
        assertThat(export.canWrite()).isTrue();
        assertThat(export.canFlush()).isTrue();
        assertThat(read(export, 0, 512)).isEqualTo(filled(512, 5));
      }
      plugin.unload();
    }
  }

  @Test
  void refusalsDuringTheHandshakeSayWhatTheUpstreamSaid() throws Exception {
    ScriptedUpstream.Script unknown = new ScriptedUpstream.Script() {
      @Override
      public boolean option(int option, Wire wire) throws IOException {
        if (option == Opt.GO) {
          wire.write(Replies.optionError(option, Rep.ERR_UNKNOWN, "no such thing"));
          return true;
        }
        return false;
      }

      @Override
      public void request(Request request, Wire wire) {}
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, unknown)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket(), "export=disk9");
      assertThatThrownBy(() -> plugin.open(false, ""))
          .isInstanceOf(NbdException.class)
          .hasMessageContaining("has no export named 'disk9': no such thing");
      plugin.unload();
    }
    ScriptedUpstream.Script hangUp = new ScriptedUpstream.Script() {
      @Override
      public boolean option(int option, Wire wire) throws IOException {
        wire.close();
        return true;
      }

      @Override
      public void request(Request request, Wire wire) {}
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, hangUp)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket());
      assertThatThrownBy(() -> plugin.open(false, ""))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
          .hasMessageContaining("closed the connection during the handshake");
      plugin.unload();
    }
  }

  @Test
  void anUpstreamSilentDuringTheHandshakeIsGivenUpOn() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    ScriptedUpstream.Script silent = new ScriptedUpstream.Script() {
      @Override
      public boolean option(int option, Wire wire) {
        try {
          release.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        return true;
      }

      @Override
      public void request(Request request, Wire wire) {}
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, silent)) {
      assertThatThrownBy(() -> NbdClient.connect(Upstream.unix(upstream.socket(), ""), ClientTls.OFF, Duration.ofMillis(200)))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
          .hasMessageContaining("did not finish the handshake in 200 ms");
      release.countDown();
    }
  }

  /** With shared=true, clients of a broken connection get EIO; the next client gets a new one. */
  @Test
  void aBrokenSharedConnectionIsReplacedForTheNextClient() throws Exception {
    int[] requests = {0};
    ScriptedUpstream.Script script = (request, wire) -> {
      if (requests[0]++ == 0) {
        wire.close();
      } else {
        wire.write(simple(0, request.cookie()));
      }
    };
    try (ScriptedUpstream upstream = new ScriptedUpstream(SIZE, FLAGS, script)) {
      NbdPlugin plugin = NbdPluginTest.configured("socket=" + upstream.socket(), "shared=true");
      Export first = plugin.open(false, "");
      assertErrno(Errno.EIO, first::flush);
      assertErrno(Errno.EIO, first::flush);
      try (Export second = plugin.open(false, "")) {
        second.flush();
      }
      first.close();
      plugin.unload();
    }
  }
}
