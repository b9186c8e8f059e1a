package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import io.jnbd.api.ReadData;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Request;
import io.jnbd.testing.Layers;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import io.jnbd.util.DirectBufferPool;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Zero-copy READs ({@link Export#readData}): what the API passes and what it does not, and the
 * bytes that real clients get when a file region goes by sendfile, a page view by a gathering
 * write, zeroes as a hole, and when a filter in the stack keeps to the ordinary path.
 */
class ZeroCopyReadsTest {
  private static final int MIB = 1 << 20;
  @TempDir Path dir;

  /** What a layer handed over, by kind, and how many reads came the ordinary way instead. */
  static final class HandOvers {
    final AtomicInteger regions = new AtomicInteger();
    final AtomicInteger views = new AtomicInteger();
    final AtomicInteger zeroes = new AtomicInteger();
    final AtomicInteger preads = new AtomicInteger();

    /** A filter that opts in to zero-copy reads and counts them here. */
    Filter counter() {
      return new LinkTest.TestFilter(next -> new FilterExport(next) {
        @Override
        public void pread(ByteBuffer buffer, long offset) throws IOException {
          preads.incrementAndGet();
          next.pread(buffer, offset);
        }

        @Override
        public ReadData readData(long offset, int length) throws IOException {
          ReadData data = next.readData(offset, length);
          switch (data) {
            case ReadData.FileRegion region -> regions.incrementAndGet();
            case ReadData.Views views -> HandOvers.this.views.incrementAndGet();
            case ReadData.Zeroes zero -> zeroes.incrementAndGet();
            case null -> { }
          }
          return data;
        }
      });
    }
  }

  /** 8 MiB of random bytes with a 1 MiB hole (never written) at 2 MiB; the bytes it reads as. */
  private byte[] sparseFile(Path file) throws IOException {
    byte[] bytes = new byte[8 * MIB];
    new Random(11).nextBytes(bytes);
    java.util.Arrays.fill(bytes, 2 * MIB, 3 * MIB, (byte) 0);
    try (RandomAccessFile out = new RandomAccessFile(file.toFile(), "rw")) {
      out.write(bytes, 0, 2 * MIB);
      out.seek(3 * MIB);
      out.write(bytes, 3 * MIB, 5 * MIB);
    }
    return bytes;
  }

  private static String sha256(byte[] bytes) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
  }

  /** nbdsh with simple replies only (no structured replies): the SHA-256 of the whole export. */
  private static String sha256WithSimpleReplies(String uri) {
    String script = String.join("\n",
        "import hashlib",
        "h = nbd.NBD()",
        "h.set_request_structured_replies(False)",
        "h.connect_uri('" + uri + "')",
        "assert not h.get_structured_replies_negotiated()",
        "digest = hashlib.sha256()",
        "size = h.get_size()",
        "for offset in range(0, size, 1 << 20):",
        "    digest.update(h.pread(min(1 << 20, size - offset), offset))",
        "print(digest.hexdigest())");
    return Tools.run(List.of("nbdsh", "-n", "-c", script), java.util.Map.of(), 120).assertSuccess().stdout().trim();
  }

  @Test
  void fileRegionsAndHolesReachNbdcopyAndNbdshByteForByte() throws Exception {
    Tools.require("nbdcopy", "nbdsh");
    Path file = dir.resolve("disk.img");
    byte[] bytes = sparseFile(file);
    HandOvers handOvers = new HandOvers();
    Plugin plugin = Layers.plugin("file", "file=" + file);
    try (TestServer server = new TestServer(List.of(handOvers.counter()), plugin, ServerConfig.defaults())) {
      assertThat(nbdcopied(server.uri())).isEqualTo(bytes);
      assertThat(sha256WithSimpleReplies(server.uri())).isEqualTo(sha256(bytes));
    } finally {
      plugin.unload();
    }
    assertThat(handOvers.regions.get()).isPositive();
    assertThat(handOvers.zeroes.get()).isPositive();
    assertThat(handOvers.preads.get()).isZero();
  }

  @Test
  void aHolePunchedWhileServingIsSentAsZeroesInAFileThatHadNone() throws Exception {
    Tools.require("nbdsh");
    Path file = dir.resolve("full.img");
    byte[] bytes = new byte[4 * MIB];
    new Random(13).nextBytes(bytes);
    Files.write(file, bytes);
    HandOvers handOvers = new HandOvers();
    Plugin plugin = Layers.plugin("file", "file=" + file);
    try (TestServer server = new TestServer(List.of(handOvers.counter()), plugin, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), String.join("\n",
          "import hashlib",
          "assert hashlib.sha256(h.pread(1 << 20, 1 << 20)).hexdigest() == '" + sha256(java.util.Arrays.copyOfRange(bytes, MIB, 2 * MIB)) + "'",
          "h.trim(1 << 20, 1 << 20)",
          "assert h.pread(1 << 20, 1 << 20) == bytearray(1 << 20)")).assertSuccess();
    } finally {
      plugin.unload();
    }
    assertThat(handOvers.regions.get()).isEqualTo(1);
    assertThat(handOvers.zeroes.get()).isEqualTo(1);
  }

  @Test
  void aFileThatShrinksUnderASendfileReplyClosesTheConnectionInsteadOfHanging() throws Exception {
    Tools.require("nbdsh");
    Path file = dir.resolve("shrinking.img");
    Files.write(file, new byte[4 * MIB]);
    Plugin plugin = Layers.plugin("file", "file=" + file);
    try (TestServer server = new TestServer(plugin)) {
      Tools.nbdsh(server.uri(), String.join("\n",
          "assert h.get_size() == 4 << 20",
          "import os",
          "os.truncate('" + file + "', 1 << 20)",
          "try:",
          "    h.pread(1 << 20, 2 << 20)",
          "    assert False, 'read past the end succeeded'",
          "except nbd.Error:",
          "    pass")).assertSuccess();
      // The server goes on serving others.
      assertThat(Tools.nbdsh(server.uri(), "print(len(h.pread(4096, 0)))").assertSuccess().stdout().trim()).isEqualTo("4096");
    } finally {
      plugin.unload();
    }
  }

  @Test
  void aFilterThatChangesTheBytesIsNeverBypassed() throws Exception {
    Path file = dir.resolve("disk.img");
    byte[] bytes = sparseFile(file);
    byte[] swapped = new byte[bytes.length];
    for (int i = 0; i < bytes.length; i += 2) {
      swapped[i] = bytes[i + 1];
      swapped[i + 1] = bytes[i];
    }
    HandOvers handOvers = new HandOvers();
    assertThat(copiedThrough(List.of(Layers.filter("swab")), handOvers)).isEqualTo(swapped);
    assertThat(handOvers.preads.get()).isPositive();
    assertThat(handOvers.regions.get() + handOvers.views.get() + handOvers.zeroes.get()).isZero();
  }

  @Test
  void filtersThatLeaveTheBytesAloneHandOverWithTheirOffsetsMapped() throws Exception {
    Path file = dir.resolve("disk.img");
    byte[] bytes = sparseFile(file);
    HandOvers handOvers = new HandOvers();
    int start = MIB + 4096;
    int range = 5 * MIB;
    List<Filter> filters = List.of(Layers.filter("count"), Layers.filter("offset", "offset=" + start, "range=" + range));
    assertThat(copiedThrough(filters, handOvers)).isEqualTo(java.util.Arrays.copyOfRange(bytes, start, start + range));
    assertThat(handOvers.regions.get()).isPositive();
    assertThat(handOvers.preads.get()).isZero();
  }

  /**
   * Every built-in filter that leaves the bytes of a READ alone (with parameters that keep it so)
   * passes the file plugin's regions on: nbdcopy gets the file's bytes, and nothing below the
   * filter was read the ordinary way. "DIR" stands for the test's directory.
   */
  @ParameterizedTest
  @ValueSource(strings = {"noextents", "nozero", "fua fuamode=pass", "nocache cachemode=emulate", "cacheextents",
      "protect protect=0-65535", "log logfile=DIR/log", "stats statsfile=DIR/stats", "delay rdelay=1ms",
      "rate rate=100G connection-rate=100G", "ip allow=anyunix", "limit limit=8", "noparallel", "exitwhen exit-when-file-created=DIR/never",
      "multi-conn multi-conn-mode=emulate", "error error-rate=0",
      "blocksize minblock=4k maxdata=1M", "blocksize-policy blocksize-preferred=64k", "truncate round-up=4k",
      "count", "offset offset=4096", "cow cow-storage=memory"})
  void filtersThatLeaveReadsAloneHandTheFilesRegionsOn(String filterAndKeys) throws Exception {
    String[] words = filterAndKeys.replace("DIR", dir.toString()).split(" ");
    Filter filter = Layers.filter(words[0], java.util.Arrays.copyOfRange(words, 1, words.length));
    HandOvers handOvers = new HandOvers();
    byte[] bytes = sparseFile(dir.resolve("disk.img"));
    byte[] copied = copiedThrough(List.of(filter), handOvers);
    byte[] expected = words[0].equals("offset") ? java.util.Arrays.copyOfRange(bytes, 4096, bytes.length) : bytes;
    assertThat(copied).isEqualTo(expected);
    assertThat(handOvers.regions.get()).isPositive();
    assertThat(handOvers.preads.get()).isZero();
  }

  /**
   * A file region is read only as its reply goes out, after the retry filters are done with the
   * READ: through them the file is read the ordinary way, where a failed read is retried.
   */
  @ParameterizedTest
  @ValueSource(strings = {"retry", "retry-request"})
  void retryFiltersReadFilesTheOrdinaryWaySoThatAFailedReadIsRetried(String filterName) throws Exception {
    HandOvers handOvers = new HandOvers();
    byte[] bytes = sparseFile(dir.resolve("disk.img"));
    assertThat(copiedThrough(List.of(Layers.filter(filterName)), handOvers)).isEqualTo(bytes);
    assertThat(handOvers.preads.get()).isPositive();
  }

  /** What nbdcopy gets from the file plugin serving the test's disk.img through filters and then the counter. */
  private byte[] copiedThrough(List<Filter> filters, HandOvers handOvers) throws Exception {
    Plugin plugin = Layers.plugin("file", "file=" + dir.resolve("disk.img"));
    List<Filter> stack = new java.util.ArrayList<>(filters);
    stack.add(handOvers.counter());
    try (TestServer server = new TestServer(stack, plugin, ServerConfig.defaults())) {
      return nbdcopied(server.uri());
    } finally {
      plugin.unload();
    }
  }

  /** What nbdcopy reads from uri; with --no-extents holes are read too, as zeroes handed over (a hole chunk on the wire). */
  private byte[] nbdcopied(String uri) throws Exception {
    Tools.require("nbdcopy");
    Path copy = dir.resolve("copy.img");
    Tools.run("nbdcopy", "--no-extents", uri, copy.toString()).assertSuccess();
    return Files.readAllBytes(copy);
  }

  @Test
  void memoryPagesGoOutAsViewsAndAbsentOnesAsZeroes() throws Exception {
    Tools.require("nbdcopy", "nbdsh");
    Path source = dir.resolve("source.img");
    byte[] bytes = sparseFile(source);
    HandOvers handOvers = new HandOvers();
    Plugin plugin = Layers.plugin("memory", "size=" + 12 * MIB);
    try (TestServer server = new TestServer(List.of(handOvers.counter()), plugin, ServerConfig.defaults())) {
      Tools.run("nbdcopy", source.toString(), server.uri()).assertSuccess();
      byte[] expected = java.util.Arrays.copyOf(bytes, 12 * MIB);
      assertThat(nbdcopied(server.uri())).isEqualTo(expected);
      assertThat(sha256WithSimpleReplies(server.uri())).isEqualTo(sha256(expected));
    }
    assertThat(handOvers.views.get()).isPositive();
    assertThat(handOvers.zeroes.get()).isPositive();
    assertThat(handOvers.preads.get()).isZero();
  }

  @Test
  void aShortSendfileIsFinishedByCopying() throws Exception {
    Path file = dir.resolve("region.img");
    byte[] bytes = new byte[8 * MIB];
    new Random(5).nextBytes(bytes);
    Files.write(file, bytes);
    Path socket = dir.resolve("s.sock");
    try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        FileChannel channel = FileChannel.open(file, StandardOpenOption.READ);
        DirectBufferPool pool = new DirectBufferPool(0);
        ExecutorService virtual = Executors.newVirtualThreadPerTaskExecutor()) {
      listener.bind(UnixDomainSocketAddress.of(socket));
      try (SocketChannel client = SocketChannel.open(UnixDomainSocketAddress.of(socket));
          SocketChannel served = listener.accept()) {
        ReplyWriter replies = new ReplyWriter(new Wire(served, served), false, pool);
        Future<?> writer = virtual.submit(() -> {
          // A virtual thread's first write leaves the socket non-blocking, as in a served connection.
          replies.ok(1);
          replies.readData(new Request(0, Cmd.READ, 2, 0, bytes.length), new ReadData.FileRegion(channel, 0, bytes.length));
          return null;
        });
        // The client reads nothing until sendfile has given up: 8 MiB does not fit the socket.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (replies.regionsFinishedByCopy() == 0) {
          assertThat(System.nanoTime()).as("sendfile never came back short").isLessThan(deadline);
          assertThat(writer.isDone()).as("the reply finished without copying").isFalse();
          Thread.sleep(10);
        }
        ByteBuffer received = ByteBuffer.allocate(16 + 16 + bytes.length);
        while (received.hasRemaining()) {
          assertThat(client.read(received)).isNotNegative();
        }
        writer.get(60, TimeUnit.SECONDS);
        received.flip();
        assertThat(received.getInt(16)).isEqualTo(0x67446698);
        assertThat(received.getLong(24)).isEqualTo(2);
        assertThat(received.slice(32, bytes.length)).isEqualTo(ByteBuffer.wrap(bytes));
        assertThat(replies.sendFileSummary()).isEqualTo("sendfile: 1 replies, 1 finished by copying");
      }
    }
  }

  /** A 4 KiB export of zeroes with the API's default readData. */
  private static class ZeroDisk implements Export {
    @Override
    public long size() {
      return 4096;
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) {
      buffer.position(buffer.limit());
    }
  }

  /** A 4 KiB export of zeroes that hands over what {@code handOver} makes of each read. */
  private static Export disk(java.util.function.IntFunction<ReadData> handOver) {
    return new ZeroDisk() {
      @Override
      public ReadData readData(long offset, int length) {
        return handOver.apply(length);
      }
    };
  }

  @Test
  void exportsAndFiltersHandNothingOverUnlessTheySaySo() throws Exception {
    Export plain = new ZeroDisk();
    assertThat(plain.readData(0, 512)).isNull();
    Export handingOver = disk(ReadData.Zeroes::new);
    assertThat(handingOver.readData(0, 512)).isEqualTo(new ReadData.Zeroes(512));
    assertThat(new FilterExport(handingOver) {}.readData(0, 512)).isNull();
  }

  @Test
  void theLinkChecksTheRangeAndLengthOfWhatIsHandedOver() throws Exception {
    AtomicInteger released = new AtomicInteger();
    Export wrongLength = disk(length ->
        new ReadData.Views(new ByteBuffer[] {ByteBuffer.allocate(length - 1)}, length, released::incrementAndGet));
    Link link = new Link("server", "test", io.jnbd.api.ThreadModel.PARALLEL, null, wrongLength, DebugFlags.defaults());
    assertThatThrownBy(() -> link.readData(0, 512)).isInstanceOf(NbdException.class)
        .satisfies(e -> assertThat(((NbdException) e).errno()).isEqualTo(Errno.EIO))
        .hasMessageContaining("gave");
    assertThat(released.get()).isEqualTo(1);
    assertThatThrownBy(() -> link.readData(4000, 512)).isInstanceOf(NbdException.class)
        .satisfies(e -> assertThat(((NbdException) e).errno()).isEqualTo(Errno.EINVAL));
    assertThat(released.get()).isEqualTo(1);
    Link right = new Link("server", "test", io.jnbd.api.ThreadModel.PARALLEL, null, disk(ReadData.Zeroes::new), DebugFlags.defaults());
    assertThat(right.readData(512, 512)).isEqualTo(new ReadData.Zeroes(512));
  }
}
