package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import java.io.EOFException;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Clients that break the protocol lose at most their own connection; the server keeps serving
 * others, and every broken connection is cleaned up.
 */
class MalformedClientTest {
  private static final int SIZE = 1 << 20;
  private TestServer server;

  @BeforeEach
  void start() {
    server = new TestServer(new ArrayDisk(SIZE));
  }

  @AfterEach
  void stop() throws Exception {
    assertServerStillServes();
    awaitNoConnections();
    server.close();
  }

  private void assertServerStillServes() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      client.request(0, Cmd.READ, 42, 0, 512);
      long[] chunk = client.chunk();
      assertThat(chunk[0]).isEqualTo(Chunk.OFFSET_HOLE);
      assertThat(chunk[1]).isEqualTo(42);
      client.request(0, Cmd.DISC, 0, 0, 0);
    }
  }

  private void awaitNoConnections() throws InterruptedException {
    assertThat(server.server().awaitClientsAtMost(0, Duration.ofSeconds(10))).as("connections ended").isTrue();
    assertThat(server.server().openConnections()).as("connections left open").isZero();
  }

  @Test
  void unknownClientFlagsDropTheConnection() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(0x80)) {
      assertThat(client.closedByServer()).isTrue();
    }
  }

  @Test
  void badOptionMagicDropsTheConnection() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.send(ByteBuffer.allocate(16).putLong(0x1234).putInt(Opt.GO).putInt(0).flip());
      assertThat(client.closedByServer()).isTrue();
    }
  }

  @Test
  void hugeOptionLengthDropsTheConnection() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.optionHeader(Opt.GO, 0xF0000000L);
      assertThat(client.closedByServer()).isTrue();
    }
  }

  @Test
  void unknownOptionsAreUnsupportedButTheClientGoesOn() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.option(99, new byte[100]);
      client.expect(Rep.ERR_UNSUP);
      client.option(Opt.EXTENDED_HEADERS, new byte[0]);
      client.expect(Rep.ERR_UNSUP);
      client.option(Opt.STARTTLS, new byte[0]);
      client.expect(Rep.ERR_POLICY);
      client.option(Opt.LIST, new byte[3]);
      client.expect(Rep.ERR_INVALID);
      client.goStructured();
    }
  }

  @Test
  void malformedInfoAndMetaContextOptionsGetErrors() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      // name length overruns the option
      client.option(Opt.GO, ByteBuffer.allocate(6).putInt(1000).putShort((short) 0).array());
      client.expect(Rep.ERR_INVALID);
      // an export name over 4096 bytes
      ByteBuffer longName = ByteBuffer.allocate(4 + 5000 + 2).putInt(5000);
      client.option(Opt.INFO, longName.array());
      client.expect(Rep.ERR_TOO_BIG);
      // SET_META_CONTEXT before structured replies
      client.option(Opt.SET_META_CONTEXT, ByteBuffer.allocate(8).putInt(0).putInt(0).array());
      client.expect(Rep.ERR_INVALID);
      // a query count larger than the data
      client.option(Opt.LIST_META_CONTEXT, ByteBuffer.allocate(8).putInt(0).putInt(500).array());
      client.expect(Rep.ERR_INVALID);
      // invalid UTF-8 in the export name
      client.option(Opt.INFO, ByteBuffer.allocate(8).putInt(2).put((byte) 0xC3).put((byte) 0x28).putShort((short) 0).array());
      client.expect(Rep.ERR_INVALID);
      // unknown export
      byte[] name = RawClient.utf8("missing");
      client.option(Opt.GO, ByteBuffer.allocate(4 + name.length + 2).putInt(name.length).put(name).putShort((short) 0).array());
      client.expect(Rep.ERR_UNKNOWN);
      client.goStructured();
    }
  }

  @Test
  void badRequestMagicDropsTheConnection() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      // A whole header, so the server has everything it needs to judge the magic.
      client.send(ByteBuffer.allocate(Nbd.REQUEST_SIZE).putInt(0, 0xdeadbeef));
      assertThat(client.closedByServer()).isTrue();
    }
  }

  @Test
  void truncatedHeaderAndShortPayloadEndOnlyThatConnection() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      client.send(ByteBuffer.allocate(10).putInt(Nbd.REQUEST_MAGIC).flip());
    }
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      client.request(0, Cmd.WRITE, 1, 0, 65536);
      client.send(ByteBuffer.allocate(100));
    }
  }

  @Test
  void unknownCommandsAndFlagsAreEinvalAndTheConnectionGoesOn() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      client.request(0, 42, 1, 0, 0);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 1, 22);
      client.request(0x8000, Cmd.READ, 2, 0, 512);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 2, 22);
      client.request(Nbd.CmdFlag.NO_HOLE, Cmd.READ, 3, 0, 512);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 3, 22);
      client.request(0, Cmd.READ, 4, -4096, 512);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 4, 22);
      client.request(0, Cmd.READ, 5, 0, 64L << 20);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 5, 22);
      client.request(0, Cmd.READ, 6, 0, 0);
      assertThat(client.chunk()[1]).isEqualTo(6);
      client.request(0, Cmd.READ, 7, SIZE - 512, 512);
      assertThat(client.chunk()[1]).isEqualTo(7);
    }
  }

  @Test
  void oversizedWriteIsDrainedAndRefused() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      int length = (32 << 20) + 4096;
      client.request(0, Cmd.WRITE, 9, 0, length);
      client.send(ByteBuffer.allocate(length));
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 9, 22);
      client.request(0, Cmd.WRITE, 10, SIZE, 512);
      client.send(ByteBuffer.allocate(512));
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 10, 28);
    }
  }

  @Test
  void exportNameOfAMissingExportDisconnects() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.option(Opt.EXPORT_NAME, RawClient.utf8("missing"));
      assertThatThrownBy(() -> client.read(8)).isInstanceOf(EOFException.class);
    }
  }

  @Test
  void abortIsAcknowledged() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.option(Opt.ABORT, new byte[0]);
      client.expect(Rep.ACK);
      assertThat(client.closedByServer()).isTrue();
    }
  }
}
