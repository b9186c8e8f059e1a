package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ThreadModel;
import io.jnbd.protocol.Nbd;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import java.io.EOFException;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The server's own limits on clients: how long a handshake may take, and how many are served at once. */
class ConnectionLimitsTest {
  private static final int FIXED_NEWSTYLE_NO_ZEROES = 3;

  /**
   * A server whose handshake limit is due at once, but passes only when the test says: {@code
   * timer.passNextLimit()}.
   */
  private static TestServer serverWithHeldHandshakeLimit(ArrayDisk disk, HeldTimer timer) {
    ServerConfig config = ServerConfig.defaults().withHandshakeLimit(Duration.ofMillis(1));
    return new TestServer(new NbdServer(Stacks.configured(List.of(), disk), config, TlsPolicy.OFF, timer));
  }

  @Test
  void aClientThatNeverFinishesTheHandshakeIsDropped() throws Exception {
    HeldTimer timer = new HeldTimer();
    try (TestServer server = serverWithHeldHandshakeLimit(new ArrayDisk(4096), timer);
        RawClient silent = new RawClient(server.socket())) {
      silent.greet(FIXED_NEWSTYLE_NO_ZEROES);
      timer.passNextLimit();
      // Blocks until the server gives up on it; without the limit this never returns.
      assertThat(silent.closedByServer()).isTrue();
    }
  }

  @Test
  void theLimitEndsWithTheHandshake() throws Exception {
    ArrayDisk disk = new ArrayDisk(4096);
    Arrays.fill(disk.data, (byte) 1); // data, not a hole, so the reply carries it
    HeldTimer timer = new HeldTimer();
    try (TestServer server = serverWithHeldHandshakeLimit(disk, timer);
        RawClient client = new RawClient(server.socket())) {
      client.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
      // A reply shows that the server is past the handshake.
      client.request(0, Nbd.Cmd.READ, 6, 0, 512);
      assertThat(client.data(6).remaining()).isEqualTo(512);
      timer.passNextLimit();
      client.request(0, Nbd.Cmd.READ, 7, 0, 512);
      assertThat(client.data(7).remaining()).isEqualTo(512);
    }
  }

  @Test
  void clientsOverTheLimitAreClosedAndASlotFreesForTheNext() throws Exception {
    ServerConfig config = ServerConfig.defaults().withMaxConnections(2);
    try (TestServer server = new TestServer(List.of(), new ArrayDisk(4096), config);
        RawClient first = new RawClient(server.socket());
        RawClient second = new RawClient(server.socket())) {
      first.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
      second.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
      try (RawClient third = new RawClient(server.socket())) {
        assertThatThrownBy(() -> third.greet(FIXED_NEWSTYLE_NO_ZEROES)).isInstanceOf(EOFException.class);
      }
      second.close();
      // The slot comes back once the server has noticed the close.
      assertThat(server.server().awaitClientsAtMost(1, Duration.ofSeconds(30))).as("the closed client's slot is free").isTrue();
      try (RawClient next = new RawClient(server.socket())) {
        next.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
      }
    }
  }

  @Test
  void requestsQueuedWhenTheClientGoesAwayAreNotRun() throws Exception {
    GatedDisk disk = new GatedDisk(ThreadModel.SERIALIZE_REQUESTS);
    try (TestServer server = new TestServer(List.of(), disk, ServerConfig.defaults())) {
      try (RawClient client = new RawClient(server.socket())) {
        client.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
        for (int cookie = 1; cookie <= 5; cookie++) {
          client.request(0, Nbd.Cmd.READ, cookie, 0, 65536);
        }
        assertThat(disk.entered.awaitAtLeast(1, Duration.ofSeconds(30))).as("the first read is at the gate").isTrue();
      }
      // The first read goes on; its reply finds the client gone. A second read may have taken
      // the thread model's lock in the meantime: it waits at a new gate.
      CountDownLatch first = disk.gate;
      Thread firstReader = disk.lastCaller;
      disk.closeGate();
      first.countDown();
      firstReader.join(TimeUnit.SECONDS.toMillis(30));
      disk.gate.countDown();
      // Closing waits for every connection and its requests: whatever was going to run has run.
      server.close();
      assertThat(disk.entered.get()).as("reads run for a client that had gone").isLessThanOrEqualTo(2);
    }
  }

  /**
   * Clients that never read their replies take the whole memory budget; a client that reads is
   * then held up only until they are dropped, not for good.
   */
  @Test
  void clientsThatNeverReadAreDroppedWhenOthersWaitForMemory() throws Exception {
    int read = 16 << 20;
    ArrayDisk disk = new ArrayDisk(read);
    Arrays.fill(disk.data, (byte) 0x2a); // data, not a hole, so each reply is as long as its read
    ServerConfig config = ServerConfig.defaults().withMemoryBudget(2L * read).withStalledReplyLimit(Duration.ofMillis(300));
    List<RawClient> stuck = new ArrayList<>();
    try (TestServer server = new TestServer(List.of(), disk, config)) {
      try {
        for (int i = 0; i < 3; i++) {
          RawClient client = new RawClient(server.socket());
          stuck.add(client);
          client.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
          client.request(0, Nbd.Cmd.READ, 1, 0, read);
          client.request(0, Nbd.Cmd.READ, 2, 0, read);
        }
        try (RawClient reader = new RawClient(server.socket())) {
          reader.greet(FIXED_NEWSTYLE_NO_ZEROES).goStructured();
          reader.request(0, Nbd.Cmd.READ, 9, 0, read);
          // Blocks until memory frees up; RawClient's own time limit fails the test if it never does.
          assertThat(reader.data(9).remaining()).isEqualTo(read);
        }
        // The first took memory before anyone waited, and its reply stalled: it was dropped.
        assertThat(endsWithin(stuck.get(0), 2L * read)).as("the first client that never read, dropped").isTrue();
      } finally {
        for (RawClient client : stuck) {
          client.close();
        }
      }
    }
  }

  /** True when the server hangs up before sending more than {@code most} further bytes. */
  private static boolean endsWithin(RawClient client, long most) throws IOException {
    try {
      for (long got = 0; got <= most; got += 65536) {
        if (client.readOrEnd(65536) == null) {
          return true;
        }
      }
      return false;
    } catch (EOFException endedMidway) {
      return true;
    }
  }
}
