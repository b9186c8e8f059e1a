package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Server bugs that {@link ProtocolFuzzTest} found, each pinned by the shortest session that shows it. */
class FuzzFindingsTest {
  private static final int EINVAL = 22;
  private TestServer server;

  @BeforeEach
  void start() {
    server = new TestServer(new ArrayDisk(1 << 20));
  }

  @AfterEach
  void stop() throws Exception {
    server.close();
  }

  @Test
  void fuaIsAcceptedOnCommandsThatWriteNothingOnceAdvertised() throws Exception {
    // "The server MUST accept all commands with this bit set": qemu once sent FLUSH with FUA.
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      client.request(CmdFlag.FUA, Cmd.READ, 1, 0, 512);
      assertThat(client.chunk()[0]).isEqualTo(Chunk.OFFSET_HOLE);
      client.request(CmdFlag.FUA, Cmd.FLUSH, 2, 0, 0);
      assertThat(client.chunk()).containsExactly(Chunk.NONE, 2, 0);
      client.request(CmdFlag.FUA, Cmd.CACHE, 3, 0, 4096);
      assertThat(client.chunk()).containsExactly(Chunk.NONE, 3, 0);
    }
  }

  @Test
  void eachInformationTypeIsSentOnceHoweverOftenItIsRequested() throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      short[] requested = {Nbd.Info.NAME, Nbd.Info.NAME, Nbd.Info.BLOCK_SIZE, Nbd.Info.BLOCK_SIZE, Nbd.Info.EXPORT};
      ByteBuffer data = ByteBuffer.allocate(6 + 2 * requested.length).putInt(0).putShort((short) requested.length);
      for (short type : requested) {
        data.putShort(type);
      }
      client.option(Opt.INFO, data.array());
      List<Integer> sent = new ArrayList<>();
      while (true) {
        ByteBuffer header = client.read(Nbd.OPTION_REPLY_HEADER_SIZE);
        int type = header.getInt(12);
        ByteBuffer payload = client.read(header.getInt(16));
        if (type != Rep.INFO) {
          assertThat(type).isEqualTo(Rep.ACK);
          break;
        }
        sent.add((int) payload.getShort());
      }
      assertThat(sent).containsExactlyInAnyOrder(Nbd.Info.EXPORT, Nbd.Info.NAME, Nbd.Info.BLOCK_SIZE);
    }
  }

  @Test
  void aFailedSetMetaContextLeavesNoContextSelected() throws Exception {
    // "Issuing this command replaces all previously-set metadata contexts (including when this command fails)."
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.option(Opt.STRUCTURED_REPLY, new byte[0]);
      client.expect(Rep.ACK);
      selectBaseAllocation(client);
      // A query count larger than the data.
      client.option(Opt.SET_META_CONTEXT, ByteBuffer.allocate(8).putInt(0).putInt(500).array());
      client.expect(Rep.ERR_INVALID);
      client.go();
      client.request(0, Cmd.BLOCK_STATUS, 1, 0, 512);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 1, EINVAL);
    }
  }

  @Test
  void baseAllocationSelectedForTheExportNamedByExportNameServesBlockStatus() throws Exception {
    // The protocol asks only that SET_META_CONTEXT and GO "(or NBD_OPT_EXPORT_NAME)" name the same export.
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.option(Opt.STRUCTURED_REPLY, new byte[0]);
      client.expect(Rep.ACK);
      selectBaseAllocation(client);
      client.option(Opt.EXPORT_NAME, new byte[0]);
      assertThat(client.read(10).getLong()).isEqualTo(1 << 20);
      client.request(0, Cmd.BLOCK_STATUS, 1, 0, 512);
      assertThat(client.chunk()).containsExactly(Chunk.BLOCK_STATUS, 1, 0);
    }
  }

  private static void selectBaseAllocation(RawClient client) throws Exception {
    byte[] context = RawClient.utf8(Nbd.BASE_ALLOCATION);
    client.option(Opt.SET_META_CONTEXT,
        ByteBuffer.allocate(12 + context.length).putInt(0).putInt(1).putInt(context.length).put(context).array());
    client.expect(Rep.META_CONTEXT);
    client.expect(Rep.ACK);
  }
}
