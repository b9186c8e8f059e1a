package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Plugin;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Request;
import io.jnbd.server.FuzzScript.End;
import io.jnbd.testing.ProcessFigures;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A seeded protocol fuzzer. Sessions written by {@link FuzzGenerator} (a grammar of valid
 * handshakes and requests with mutations) are played by {@link FuzzPlayer}, which judges every
 * reply, against one in-process server with a memory export. First a well-behaved session is cut
 * at every byte; then come random sessions, and every {@value #LIVE_CHECK_EVERY} of them (and at
 * the end) a real client (nbdsh) writes and reads the export, to show the server still serves
 * well-behaved clients and holds the data the fuzzer's model says. Threads, file descriptors
 * and memory are measured before and after, and must be back where they were.
 *
 * <p>{@code -Djnbd.fuzz.seed=N} replays a run (the seed is printed, and named in every failure);
 * {@code -Djnbd.fuzz.cases=N} sets the number of random sessions. The default suits every build;
 * {@code bench/run fuzz} runs 50000.
 */
class ProtocolFuzzTest {
  /** Not a multiple of the memory plugin's pages or of any block size, so edges get exercised. */
  private static final int EXPORT_SIZE = (1 << 20) + 4099;
  /** How long the server may take over anything; only a hang comes near it. */
  private static final Duration TIMEOUT = Duration.ofSeconds(10);
  private static final int DEFAULT_CASES = 3000;
  private static final int LIVE_CHECK_EVERY = 1000;
  private static final String SERVER_THREADS = "nbd-";

  private TestServer server;
  private ExportModel model;
  private final FuzzTally tally = new FuzzTally();
  private long seed;
  private int liveChecks;

  @Test
  void fuzzedSessionsNeverHangAndAreAnsweredByTheProtocol() throws Exception {
    seed = Long.getLong("jnbd.fuzz.seed", new SplittableRandom().nextLong());
    int cases = Integer.getInteger("jnbd.fuzz.cases", DEFAULT_CASES);
    System.out.printf("fuzz: seed %d, %d random sessions%n", seed, cases);
    Plugin memory = Catalog.plugin("memory");
    memory.config("size", Integer.toString(EXPORT_SIZE));
    model = new ExportModel(EXPORT_SIZE);
    SplittableRandom liveRandom = new SplittableRandom(~seed);
    try (TestServer started = new TestServer(List.of(), memory, ServerConfig.defaults())) {
      server = started;
      // The first real client also starts what every later one reuses (the process reaper).
      liveCheck(liveRandom);
      ProcessFigures before = ProcessFigures.measure(SERVER_THREADS);
      long startNanos = System.nanoTime();

      FuzzScript canonical = FuzzGenerator.canonical(EXPORT_SIZE);
      for (int cut = 0; cut <= canonical.length(); cut++) {
        play(canonical.cutAfter(cut, new End(cut % 2 == 0)), "the well-behaved session cut after " + cut + " bytes", 0);
      }
      SplittableRandom sessions = new SplittableRandom(seed);
      for (int i = 0; i < cases; i++) {
        SplittableRandom random = sessions.split();
        play(FuzzGenerator.session(random, EXPORT_SIZE), "random session " + i, i + 1);
        if ((i + 1) % LIVE_CHECK_EVERY == 0) {
          liveCheck(liveRandom);
        }
      }
      liveCheck(liveRandom);
      double seconds = (System.nanoTime() - startNanos) / 1e9;

      awaitServerThreads(before.namedThreads());
      ProcessFigures after = ProcessFigures.measure(SERVER_THREADS);
      System.out.printf("fuzz: %d sessions cut at every byte, %d random, %d live checks with nbdsh in %.1f s%n",
          canonical.length() + 1, cases, liveChecks, seconds);
      System.out.println("fuzz: " + tally);
      System.out.println("fuzz: before " + before);
      System.out.println("fuzz: after  " + after);
      System.out.println("fuzz: platform threads before " + before.platformThreads() + ", after " + after.platformThreads());
      assertThat(after.namedThreads()).as("server threads").isEqualTo(before.namedThreads());
      // Room for one the JVM may start on its own, such as a second process reaper.
      assertThat(after.platformThreads()).as("platform threads").hasSizeLessThanOrEqualTo(before.platformThreads().size() + 1);
      assertThat(after.openFds()).as("open file descriptors").isLessThanOrEqualTo(before.openFds() + 4);
      assertThat(after.heapBytes()).as("heap in use").isLessThanOrEqualTo(before.heapBytes() + (32 << 20));
      // With every session over, the request buffers still allocated are those kept for reuse.
      assertThat(server.server().bufferPool().allocatedBytes()).as("request buffers allocated")
          .isLessThanOrEqualTo(NbdServer.POOLED_BUFFER_BYTES);
      // Small pool buffers are plain direct buffers: what the pool keeps shows here as well.
      assertThat(after.directBytes()).as("direct memory in use")
          .isLessThanOrEqualTo(before.directBytes() + NbdServer.POOLED_BUFFER_BYTES + (1 << 20));
    }
  }

  @Test
  void aBadMagicIsAHangUpThoughTheClientIsStillSendingItsPayload() throws Exception {
    // A fuzzed session once failed with "Broken pipe": the server had hung up on a bad magic
    // while the client still wrote the 60 KB that followed it; far more than a socket holds.
    Plugin memory = Catalog.plugin("memory");
    memory.config("size", Integer.toString(EXPORT_SIZE));
    model = new ExportModel(EXPORT_SIZE);
    byte[] write = new byte[Nbd.REQUEST_SIZE + (8 << 20)];
    new Request(0, Cmd.WRITE, 1, 0, 8 << 20).encode(ByteBuffer.wrap(write));
    ByteBuffer.wrap(write).putInt(0, Nbd.SIMPLE_REPLY_MAGIC);
    List<FuzzScript.Step> steps = new ArrayList<>(FuzzGenerator.canonical(EXPORT_SIZE).steps().subList(0, 4));
    steps.add(new FuzzScript.Burst(List.of(new FuzzScript.BadMagic(write))));
    steps.add(new FuzzScript.End(false));
    try (TestServer started = new TestServer(List.of(), memory, ServerConfig.defaults())) {
      server = started;
      play(new FuzzScript(steps), "a bad magic before 8 MiB", 0);
    }
    assertThat(tally.hangUps).isEqualTo(1);
  }

  /** Plays one session and waits for the server to be done with it; any failure names the seed. */
  private void play(FuzzScript script, String label, int casesToReplay) throws InterruptedException {
    try {
      FuzzPlayer.play(server.socket(), TIMEOUT, model, tally, script);
      awaitNoConnections();
    } catch (AssertionError | IOException | RuntimeException e) {
      throw new AssertionError("fuzz seed " + seed + ", " + label + ": " + e
          + "\n  replay: -Djnbd.fuzz.seed=" + seed + " -Djnbd.fuzz.cases=" + casesToReplay
          + "\n  session:" + script, e);
    }
  }

  /** Every connection must end soon after its client stops, also one the client left mid-request. */
  private void awaitNoConnections() throws InterruptedException {
    if (!server.server().awaitClientsAtMost(0, TIMEOUT)) {
      throw new AssertionError("the connection is still open " + TIMEOUT.toSeconds() + " s after the client stopped");
    }
  }

  /** Request threads end a moment after their connection is gone. */
  private void awaitServerThreads(long expected) throws InterruptedException {
    long deadline = System.nanoTime() + TIMEOUT.toNanos();
    while (ProcessFigures.liveThreadsNamed(SERVER_THREADS) > expected && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
  }

  /**
   * A real client writes a random block and reads the whole export back: the server still serves
   * well-behaved clients, and holds what the model says.
   */
  private void liveCheck(SplittableRandom random) throws IOException {
    Tools.require("nbdsh");
    byte[] data = new byte[1 + random.nextInt(65536)];
    random.nextBytes(data);
    long offset = random.nextLong(EXPORT_SIZE - data.length + 1);
    Path directory = Files.createTempDirectory("jnbd-fuzz");
    Path written = directory.resolve("written");
    Path read = directory.resolve("read");
    try {
      Files.write(written, data);
      Tools.nbdsh(server.uri(), """
          assert h.get_size() == %d
          h.pwrite(open("%s", "rb").read(), %d)
          open("%s", "wb").write(h.pread(%d, 0))
          """.formatted(EXPORT_SIZE, written, offset, read, EXPORT_SIZE)).assertSuccess();
      model.write(offset, data);
      long wrong = model.mismatch(0, Files.readAllBytes(read), new BitSet());
      assertThat(wrong).as("fuzz seed %d: first offset where nbdsh read other data than the model holds", seed)
          .isNegative();
      liveChecks++;
    } finally {
      Files.deleteIfExists(written);
      Files.deleteIfExists(read);
      Files.deleteIfExists(directory);
    }
  }
}
