package io.jnbd.server;

import static io.jnbd.testing.ProcessFigures.liveThreadsNamed;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Plugin;
import io.jnbd.api.ThreadModel;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Request;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.server.tls.TlsSettings;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.AwaitableCount;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestPki;
import io.jnbd.testing.TestPlugin;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import io.jnbd.util.DirectBufferPool;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Clients that flood, vanish, stall or send odd handshakes: the server stays bounded, cleans up
 * after them and keeps serving everyone else. Waits are bounded only as hang guards.
 */
class RobustnessTest {
  private static final Duration HANG_GUARD = Duration.ofSeconds(60);
  /** An inline limit no service time reaches, so the reader-runs-it rule depends only on the traffic. */
  private static final Duration EVERY_EXPORT_IS_FAST = Duration.ofNanos(Long.MAX_VALUE);

  @Test
  void requestFloodAgainstAStalledExportIsHeldBackByTheSocket() throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    int requests = 1000;
    int length = 256 * 1024;
    // A budget whose connection share (a sixteenth) holds 64 such requests, so that the request
    // limit, not the memory budget, is what holds the client back here.
    ServerConfig config = ServerConfig.defaults().withMemoryBudget(16L * ServerConfig.DEFAULT_MAX_REQUESTS * length);
    try (TestServer server = new TestServer(List.of(), disk, config);
        RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      AtomicLong sent = new AtomicLong();
      Thread sender = Thread.ofPlatform().start(() -> {
        ByteBuffer payload = ByteBuffer.allocate(length);
        try {
          for (int i = 0; i < requests; i++) {
            client.request(0, Cmd.WRITE, i, 0, length);
            client.send(payload.clear());
            sent.addAndGet(Nbd.REQUEST_SIZE + length);
          }
        } catch (IOException e) {
          throw new RuntimeException(e);
        }
      });
      awaitCount(disk.entered, ServerConfig.DEFAULT_MAX_REQUESTS);
      awaitStable(sent);
      // The server took what it may run at once and stopped reading: the rest waits in the
      // client, not in server memory.
      assertThat(disk.entered.get()).isEqualTo(ServerConfig.DEFAULT_MAX_REQUESTS);
      assertThat(sent.get()).isLessThan(32L << 20);
      assertThat(sender.isAlive()).isTrue();
      disk.gate.countDown();
      Set<Long> answered = new HashSet<>();
      assertTimeoutPreemptively(HANG_GUARD, () -> {
        for (int i = 0; i < requests; i++) {
          long[] chunk = client.chunk();
          assertThat(chunk[0]).isEqualTo(Chunk.NONE);
          answered.add(chunk[1]);
        }
      });
      assertThat(answered).hasSize(requests);
      sender.join();
      assertThat(disk.left.get()).isEqualTo(requests);
    }
  }

  @Test
  void clientThatVanishesWithRequestsInFlightLeavesNothingRunning() throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults())) {
      try (RawClient client = new RawClient(server.socket()).greet(3)) {
        client.goStructured();
        for (int i = 0; i < 64; i++) {
          client.request(0, Cmd.READ, i, i * 4096L, 4096);
        }
        awaitCount(disk.entered, 64);
        assertThat(liveThreadsNamed("nbd-request-")).isEqualTo(64);
        assertThat(liveThreadsNamed("nbd-conn-")).isEqualTo(1);
      }
      disk.gate.countDown();
      // The connection ends only once every request it started has finished.
      assertThat(server.server().awaitClientsAtMost(0, HANG_GUARD)).as("connections ended").isTrue();
      assertThat(disk.left.get()).isEqualTo(64);
      await(() -> liveThreadsNamed("nbd-request-") == 0 && liveThreadsNamed("nbd-conn-") == 0);
      assertServes(server);
    }
  }

  @Test
  void serialRequestsToAFastExportRunOnTheConnectionsOwnThread() throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    disk.gate.countDown();
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults())) {
      // Every export counts as fast: what a request took on a loaded machine cannot matter.
      server.server().inlineLimit(EVERY_EXPORT_IS_FAST);
      assertRunsOnTheReader(server, disk, true);
    }
  }

  @Test
  void serialRequestsToASlowExportRunOnThreadsOfTheirOwn() throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    disk.gate.countDown();
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults())) {
      server.server().inlineLimit(Duration.ZERO);
      assertRunsOnTheReader(server, disk, false);
    }
  }

  private static void assertRunsOnTheReader(TestServer server, GatedDisk disk, boolean onTheReader) throws Exception {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      assertTimeoutPreemptively(HANG_GUARD, () -> {
        for (int i = 0; i < 20; i++) {
          client.request(0, Cmd.READ, i, 0, 4096);
          assertThat(client.chunk()[0]).isEqualTo(Chunk.OFFSET_DATA);
        }
      });
      // No hand-off when inline: the thread that read the request ran it. Not every request: on
      // a loaded machine the last request's thread may not have let go of its slot yet when the
      // client's next request arrives, and the reader then hands that one over.
      boolean anyOnTheReader = disk.callers.stream()
          .anyMatch(thread -> !thread.isVirtual() && thread.getName().startsWith("nbd-conn-"));
      assertThat(anyOnTheReader).isEqualTo(onTheReader);
    }
  }

  @Test
  void requestsSentTogetherRunTogetherEvenAfterFastOnes() throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    disk.gate.countDown();
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults())) {
      // However quick the export: the reader must still see that a second request is waiting.
      server.server().inlineLimit(EVERY_EXPORT_IS_FAST);
      try (RawClient client = new RawClient(server.socket()).greet(3)) {
        client.goStructured();
        int warmup = 20;
        assertTimeoutPreemptively(HANG_GUARD, () -> {
          for (int i = 0; i < warmup; i++) {
            client.request(0, Cmd.READ, i, 0, 4096);
            client.chunk();
          }
        });
        // The first must not keep the second from starting, however quick earlier ones were.
        assertTwoSentTogetherBothStart(client, disk, warmup);
      }
    }
  }

  /** Serves {@code disk} with TLS required, certificates made in {@code dir}. */
  private static TestServer overTls(Path dir, GatedDisk disk) {
    Path pki = TestPki.certificates(dir.resolve("pki"), "inline test CA");
    TlsPolicy tls = TlsPolicy.load(new TlsSettings(TlsMode.REQUIRE, pki, null, false, false));
    return new TestServer(Stacks.configured(List.of(), disk), ServerConfig.defaults(), tls);
  }

  @Test
  void requestsSentTogetherOverTlsRunOnTheReaderWhenTheExportIsQuick(@TempDir Path dir) throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    disk.gate.countDown();
    Path pki = dir.resolve("pki");
    try (TestServer server = overTls(dir, disk)) {
      server.server().inlineLimit(EVERY_EXPORT_IS_FAST);
      // 256 reads, 64 in flight: the reader nearly always has more requests waiting.
      Tools.run("nbdcopy", "--connections=1", "--requests=64", "--request-size=4096", "--no-extents",
          "nbds+unix:///?socket=" + server.socket() + "&tls-certificates=" + pki, "null:").assertSuccess();
      assertThat(disk.callers).hasSize(GatedDisk.SIZE / 4096);
      // Until the connection's first request is timed, the reader hands requests over; it can
      // start no more than the connection's request limit before one has finished.
      long handedOver = disk.callers.stream().filter(thread -> !thread.getName().startsWith("nbd-conn-")).count();
      assertThat(handedOver).isLessThanOrEqualTo(ServerConfig.DEFAULT_MAX_REQUESTS);
    }
  }

  @Test
  void overTlsOneSlowAnswerStopsTheReaderFromRunningRequestsThatOthersWaitBehind(@TempDir Path dir) throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.PARALLEL);
    disk.gate.countDown();
    try (TestServer server = overTls(dir, disk)) {
      // Set before the client connects: a connection takes the limit it finds. Loose enough for a
      // cold JVM's first requests to count as quick.
      server.server().inlineLimit(Duration.ofMillis(20));
      try (RawClient client = new RawClient(server.socket()).greet(3).startTls()) {
        manyQuickOneSlowThenTwoTogether(client, disk);
      }
    }
  }

  /**
   * Over a TLS connection: many quick reads, one slow one, ten quick ones, then two sent together
   * while the export waits at its gate; both must start.
   */
  private static void manyQuickOneSlowThenTwoTogether(RawClient client, GatedDisk disk) throws Exception {
    client.goStructured();
    int quick = 2 * ServerConfig.DEFAULT_MAX_REQUESTS;
    assertTimeoutPreemptively(HANG_GUARD, () -> {
      for (int i = 0; i < quick; i++) {
        client.request(0, Cmd.READ, i, 0, 4096);
        client.chunk();
      }
      // One slow answer: it waits at the gate for 15 times the inline limit.
      disk.closeGate();
      client.request(0, Cmd.READ, quick, 0, 4096);
      awaitCount(disk.entered, quick + 1);
      Thread.sleep(300);
      disk.gate.countDown();
      client.chunk();
      // Quick again, so that on average the export looks quick once more; the slow one, after
      // ten more, still counts for more than 4 times the limit.
      for (int i = 1; i <= 10; i++) {
        client.request(0, Cmd.READ, quick + i, 0, 4096);
        client.chunk();
      }
    });
    assertTwoSentTogetherBothStart(client, disk, quick + 11);
  }

  /**
   * Sends two reads together while the export waits at its gate, {@code entered} calls having
   * entered it before: both must start (were the first run on the reader, it would wait at the
   * gate and the second never start), and both get their replies once the gate opens.
   */
  private static void assertTwoSentTogetherBothStart(RawClient client, GatedDisk disk, int entered) throws Exception {
    disk.closeGate();
    ByteBuffer both = ByteBuffer.allocate(2 * Nbd.REQUEST_SIZE);
    new Request(0, Cmd.READ, 100, 0, 4096).encode(both);
    new Request(0, Cmd.READ, 101, 4096, 4096).encode(both);
    client.send(both.flip());
    awaitCount(disk.entered, entered + 2);
    disk.gate.countDown();
    assertTimeoutPreemptively(HANG_GUARD, () -> {
      assertThat(Set.of(client.chunk()[1], client.chunk()[1])).containsExactlyInAnyOrder(100L, 101L);
    });
  }

  @Test
  void clientThatStopsReadingRepliesDoesNotHoldUpOthers() throws Exception {
    // Under SERIALIZE_ALL_REQUESTS one lock spans every connection: a reply that cannot be
    // written must not be sent while holding it.
    GatedDisk disk = new GatedDisk(ThreadModel.SERIALIZE_ALL_REQUESTS);
    disk.gate.countDown();
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults());
        RawClient stalled = new RawClient(server.socket()).greet(3)) {
      stalled.goStructured();
      for (int i = 0; i < 16; i++) {
        stalled.request(0, Cmd.READ, i, 0, GatedDisk.SIZE);
      }
      // The first 1 MiB reply overfills the socket buffer of a client that never reads.
      awaitCount(disk.left, 1);
      assertTimeoutPreemptively(HANG_GUARD, () -> assertServes(server));
    }
  }

  @Test
  void clientsThatNeverReadTheirRepliesHoldOnlyTheirShareAndOthersAreServed() throws Exception {
    long budget = 96 << 20;
    int readLength = 4 << 20;
    int stuckClients = 16;
    ArrayDisk disk = new ArrayDisk(readLength);
    // Not zeroes, which go out as small hole chunks: each reply here is as long as its read.
    Arrays.fill(disk.data, (byte) 0x55);
    List<RawClient> stuck = new ArrayList<>();
    ServerConfig config = ServerConfig.defaults().withMemoryBudget(budget).withShutdownGrace(Duration.ofMillis(200));
    try (TestServer server = new TestServer(List.of(), disk, config)) {
      MemoryBudget memory = server.server().memoryBudget();
      // A share of 6 MiB: one 4 MiB read per connection.
      assertThat(memory.connectionShare()).isEqualTo(budget / 16);
      try {
        for (int i = 0; i < stuckClients; i++) {
          RawClient client = new RawClient(server.socket()).greet(3);
          stuck.add(client);
          client.goStructured();
          for (int cookie = 0; cookie < 8; cookie++) {
            client.request(0, Cmd.READ, cookie, 0, readLength);
          }
        }
        // Each holds the read whose reply it does not take (those before it fit in the socket);
        // its next read waits for the connection's share, and the connection is not read.
        await(() -> memory.used() == (long) stuckClients * readLength);
        assertTimeoutPreemptively(HANG_GUARD, () -> {
          try (RawClient client = new RawClient(server.socket()).greet(3)) {
            client.goStructured();
            for (int cookie = 100; cookie < 104; cookie++) {
              client.request(0, Cmd.READ, cookie, 0, readLength);
              assertFilled(client.data(cookie), readLength, (byte) 0x55);
            }
          }
        });
        assertThat(memory.peakUsed()).isLessThanOrEqualTo(budget);
        // What the pool allocated: the budget in use plus what it keeps for reuse, no more.
        assertThat(server.server().bufferPool().allocatedBytes()).as("buffer memory allocated")
            .isLessThanOrEqualTo(budget + NbdServer.POOLED_BUFFER_BYTES);
        // Stopping wakes readers that wait for memory; after the grace, replies that cannot be
        // sent are abandoned, and everything they held comes back.
        server.close();
        await(() -> memory.used() == 0 && liveThreadsNamed("nbd-conn-") == 0);
      } finally {
        for (RawClient client : stuck) {
          client.close();
        }
      }
    }
  }

  @Test
  void closingTheServerEndsAReplyThatTheReaderIsStuckWriting() throws Exception {
    int readLength = 16 << 20; // more than the socket buffers take
    ArrayDisk disk = new ArrayDisk(readLength);
    Arrays.fill(disk.data, (byte) 0x55);
    ServerConfig config = ServerConfig.defaults().withShutdownGrace(Duration.ofMillis(200));
    try (TestServer server = new TestServer(List.of(), disk, config);
        RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      assertTimeoutPreemptively(HANG_GUARD, () -> {
        for (int cookie = 0; cookie < 20; cookie++) {
          client.request(0, Cmd.READ, cookie, 0, 4096);
          client.data(cookie);
        }
      });
      // A lone request to an export that has lately been quick: the reader runs it itself (if
      // the machine is not too busy to have timed the export so), and then blocks writing a
      // reply that the client does not read. Only closing the socket ends that write.
      client.request(0, Cmd.READ, 99, 0, readLength);
      MemoryBudget memory = server.server().memoryBudget();
      await(() -> memory.used() == readLength);
      server.close();
      await(() -> memory.used() == 0 && liveThreadsNamed("nbd-conn-") == 0);
    }
  }

  @Test
  void requestsLargerThanTheWholeBudgetWaitTheirTurnInsteadOfFailing() throws Exception {
    int largest = DirectBufferPool.maxSize();
    int clients = 2;
    ArrayDisk disk = new ArrayDisk(clients * largest);
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults().withMemoryBudget(1 << 20))) {
      MemoryBudget memory = server.server().memoryBudget();
      List<Thread> exchanges = new ArrayList<>();
      List<Throwable> failures = new CopyOnWriteArrayList<>();
      for (int i = 0; i < clients; i++) {
        long offset = (long) i * largest;
        byte fill = (byte) (i + 1);
        exchanges.add(Thread.ofPlatform().start(() -> {
          try (RawClient client = new RawClient(server.socket()).greet(3)) {
            client.goStructured();
            exchangeLargeAndSmallRequests(client, offset, largest, fill);
            client.request(0, Cmd.READ, 99, offset, largest);
            assertFilled(client.data(99), largest, fill);
          } catch (Throwable e) {
            failures.add(e);
          }
        }));
      }
      assertTimeoutPreemptively(HANG_GUARD, () -> {
        for (Thread exchange : exchanges) {
          exchange.join();
        }
      });
      assertThat(failures).isEmpty();
      // A request larger than the budget ran only when nothing else held any of it.
      assertThat(memory.peakUsed()).isEqualTo(largest);
      await(() -> memory.used() == 0);
    }
  }

  /**
   * Sends WRITEs and READs from 4 KiB to {@code largest} all at once, from a thread of their own
   * as the server may not read more until the client takes replies, and checks that every one
   * succeeds.
   */
  private static void exchangeLargeAndSmallRequests(RawClient client, long offset, int largest, byte fill) throws Exception {
    ByteBuffer data = ByteBuffer.allocate(largest);
    Arrays.fill(data.array(), fill);
    int[][] requests = {
        {Cmd.WRITE, largest}, {Cmd.READ, largest}, {Cmd.WRITE, 4096}, {Cmd.READ, 4096},
        {Cmd.WRITE, 512 * 1024}, {Cmd.READ, 2 << 20}, {Cmd.READ, largest / 2 + 1}};
    Thread sender = Thread.ofPlatform().start(() -> {
      try {
        for (int cookie = 0; cookie < requests.length; cookie++) {
          int type = requests[cookie][0];
          int length = requests[cookie][1];
          client.request(0, type, cookie, offset, length);
          if (type == Cmd.WRITE) {
            client.send(data.clear().limit(length));
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    });
    Set<Long> answered = new HashSet<>();
    for (int i = 0; i < requests.length; i++) {
      long[] chunk = client.chunk();
      assertThat(chunk[0]).as("reply to %d", chunk[1]).isIn((long) Chunk.NONE, (long) Chunk.OFFSET_DATA);
      answered.add(chunk[1]);
    }
    assertThat(answered).hasSize(requests.length);
    sender.join();
  }

  @Test
  void anExportThatThrowsAnErrorFailsThatRequestOnlyAndIsLoggedOnce() throws Exception {
    ThrowingDisk disk = new ThrowingDisk();
    PrintStream stderr = System.err;
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults());
        RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      record Case(Supplier<Error> error, int errno) {}
      List<Case> cases = List.of(
          new Case(() -> new OutOfMemoryError("arranged"), Errno.ENOMEM.wireValue()),
          new Case(StackOverflowError::new, Errno.EIO.wireValue()),
          new Case(() -> new AssertionError("arranged"), Errno.EIO.wireValue()));
      assertTimeoutPreemptively(HANG_GUARD, () -> {
        long cookie = 0;
        // The connection's first request runs on a thread of its own, lone ones after it on the
        // connection's reader, and requests sent together on threads of their own.
        for (Case failing : cases) {
          disk.error = failing.error();
          client.request(0, Cmd.READ, ++cookie, ThrowingDisk.FAILING, 4096);
          assertThat(client.chunk()).containsExactly(Chunk.ERROR, cookie, failing.errno());
          client.request(0, Cmd.READ, ++cookie, 0, 4096);
          assertThat(client.data(cookie).remaining()).isEqualTo(4096);
        }
        int flood = 20;
        ByteBuffer together = ByteBuffer.allocate(flood * Nbd.REQUEST_SIZE);
        for (int i = 0; i < flood; i++) {
          new Request(0, Cmd.READ, ++cookie, ThrowingDisk.FAILING, 4096).encode(together);
        }
        client.send(together.flip());
        for (int i = 0; i < flood; i++) {
          assertThat(client.chunk()[2]).isEqualTo(Errno.EIO.wireValue());
        }
        client.request(0, Cmd.READ, ++cookie, 0, 4096);
        assertThat(client.data(cookie).remaining()).isEqualTo(4096);
      });
    } finally {
      System.setErr(stderr);
      stderr.print(log.toString(StandardCharsets.UTF_8));
    }
    List<String> warnings = log.toString(StandardCharsets.UTF_8).lines().filter(line -> line.contains(" WARN ")).toList();
    assertThat(warnings).hasSize(1);
    assertThat(warnings.getFirst()).contains("OutOfMemoryError");
    assertThat(log.toString(StandardCharsets.UTF_8)).doesNotContain("Exception in thread");
  }

  @Test
  void exportNameLongerThanTheProtocolAllowsDisconnects() throws Exception {
    // The memory plugin serves any name, so only the length rule can refuse it.
    Plugin memory = Catalog.plugin("memory");
    memory.config("size", "1M");
    try (TestServer server = new TestServer(List.of(), memory, ServerConfig.defaults())) {
      try (RawClient client = new RawClient(server.socket()).greet(3)) {
        client.option(Opt.EXPORT_NAME, "n".repeat(Nbd.MAX_STRING).getBytes());
        assertThat(client.read(10).getLong()).isEqualTo(1 << 20);
      }
      for (int length : new int[] {Nbd.MAX_STRING + 1, 1 << 20}) {
        try (RawClient client = new RawClient(server.socket()).greet(3)) {
          client.option(Opt.EXPORT_NAME, "n".repeat(length).getBytes());
          assertThatThrownBy(() -> client.read(10)).isInstanceOf(EOFException.class);
        }
      }
      try (RawClient client = new RawClient(server.socket()).greet(3)) {
        client.option(Opt.EXPORT_NAME, new byte[] {(byte) 0xC3, 0x28});
        assertThatThrownBy(() -> client.read(10)).as("invalid UTF-8").isInstanceOf(EOFException.class);
      }
      assertServes(server);
    }
  }

  @Test
  void infoRequestCountThatDoesNotMatchTheDataIsInvalid() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(1 << 20));
        RawClient client = new RawClient(server.socket()).greet(3)) {
      // Five info types announced, one present.
      client.option(Opt.INFO, ByteBuffer.allocate(8).putInt(0).putShort((short) 5).putShort((short) Nbd.Info.NAME).array());
      client.expect(Rep.ERR_INVALID);
      // None announced, one present.
      client.option(Opt.GO, ByteBuffer.allocate(8).putInt(0).putShort((short) 0).putShort((short) Nbd.Info.NAME).array());
      client.expect(Rep.ERR_INVALID);
      client.goStructured();
    }
  }

  @Test
  void plainNewstyleClientsAreServedThroughExportName() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(1 << 20))) {
      for (int flags : new int[] {0, Nbd.ClientFlag.NO_ZEROES}) {
        try (RawClient client = new RawClient(server.socket()).greet(flags)) {
          client.option(Opt.EXPORT_NAME, new byte[0]);
          ByteBuffer reply = client.read(10);
          assertThat(reply.getLong()).isEqualTo(1 << 20);
          if (flags == 0) {
            assertThat(client.read(124).array()).containsOnly(0);
          }
          client.request(0, Cmd.READ, 5, 0, 512);
          ByteBuffer simple = client.read(16);
          assertThat(simple.getInt()).isEqualTo(Nbd.SIMPLE_REPLY_MAGIC);
          assertThat(simple.getInt()).isZero();
          assertThat(simple.getLong()).isEqualTo(5);
          assertThat(client.read(512).array()).containsOnly(0);
        }
      }
    }
  }

  @Test
  void zeroLengthReadAndBlockStatusGetRepliesClientsAccept() throws Exception {
    try (TestServer server = new TestServer(new ArrayDisk(1 << 20));
        RawClient client = new RawClient(server.socket()).greet(3)) {
      client.option(Opt.STRUCTURED_REPLY, new byte[0]);
      client.expect(Rep.ACK);
      byte[] context = RawClient.utf8(Nbd.BASE_ALLOCATION);
      client.option(Opt.SET_META_CONTEXT,
          ByteBuffer.allocate(12 + context.length).putInt(0).putInt(1).putInt(context.length).put(context).array());
      client.expect(Rep.META_CONTEXT);
      client.expect(Rep.ACK);
      client.option(Opt.GO, ByteBuffer.allocate(6).putInt(0).putShort((short) 0).array());
      while (client.optionReplyType() != Rep.ACK) {
        // INFO replies before the final ACK
      }
      // A data chunk must carry at least one byte: a zero-length READ succeeds with none.
      client.request(0, Cmd.READ, 1, 0, 0);
      assertThat(client.chunk()).containsExactly(Chunk.NONE, 1, 0);
      // A status reply must carry at least one extent, so zero length is refused.
      client.request(0, Cmd.BLOCK_STATUS, 2, 0, 0);
      assertThat(client.chunk()).containsExactly(Chunk.ERROR, 2, 22);
      client.request(0, Cmd.BLOCK_STATUS, 3, 0, 512);
      assertThat(client.chunk()).containsExactly(Chunk.BLOCK_STATUS, 3, 0);
    }
  }

  /** A 1 MiB export of 0x55 bytes whose reads from {@link #FAILING} on throw {@link #error}. */
  private static final class ThrowingDisk extends TestPlugin {
    static final long FAILING = 512 * 1024;
    volatile Supplier<Error> error;

    ThrowingDisk() {
      super("throwing", "test export whose reads of its second half throw");
    }

    @Override
    public Export open(boolean readOnly, String exportName) {
      return new Export() {
        @Override
        public long size() {
          return 2 * FAILING;
        }

        @Override
        public void pread(ByteBuffer buffer, long offset) {
          if (offset >= FAILING) {
            throw error.get();
          }
          while (buffer.hasRemaining()) {
            buffer.put((byte) 0x55);
          }
        }
      };
    }
  }

  private static void assertServes(TestServer server) throws IOException {
    try (RawClient client = new RawClient(server.socket()).greet(3)) {
      client.goStructured();
      client.request(0, Cmd.READ, 77, 0, 512);
      assertThat(client.chunk()[1]).isEqualTo(77);
    }
  }

  private static void assertFilled(ByteBuffer data, int length, byte fill) {
    byte[] expected = new byte[length];
    Arrays.fill(expected, fill);
    assertThat(data.remaining()).isEqualTo(length);
    assertThat(data.mismatch(ByteBuffer.wrap(expected))).as("first byte that differs").isEqualTo(-1);
  }

  private static void awaitCount(AwaitableCount count, int wanted) throws InterruptedException {
    assertThat(count.awaitAtLeast(wanted, HANG_GUARD)).as("%d events within %s", wanted, HANG_GUARD).isTrue();
  }

  /** For conditions that no event announces (memory in use, threads alive). */
  static void await(BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + HANG_GUARD.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not reached within " + HANG_GUARD);
      }
      Thread.sleep(10);
    }
  }

  /** Waits until the counter stops moving: the sender is blocked. */
  private static void awaitStable(AtomicLong counter) throws InterruptedException {
    long last = -1;
    int unchanged = 0;
    while (unchanged < 5) {
      Thread.sleep(100);
      long now = counter.get();
      unchanged = now == last ? unchanged + 1 : 0;
      last = now;
    }
  }
}
