package io.jnbd.plugins.nbd;

import static io.jnbd.testing.Exports.read;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import io.jnbd.filters.Sleeper;
import io.jnbd.server.NbdServer;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.server.tls.ClientTls;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.Layers;
import io.jnbd.testing.RecordingSleeper;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The nbd plugin against jnbd's own server in-process: commands, capabilities, errors, sharing, retry. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class NbdPluginTest {
  private static final int DISK = 1 << 20;
  @TempDir Path dir;

  static NbdPlugin configured(Sleeper sleeper, String... keyValues) {
    NbdPlugin plugin = Layers.configure(new NbdPlugin(sleeper), keyValues);
    plugin.configComplete();
    return plugin;
  }

  static NbdPlugin configured(String... keyValues) {
    return configured(new RecordingSleeper(), keyValues);
  }

  @Test
  void everyCommandReachesTheUpstreamWithItsFlags() throws Exception {
    ArrayDisk disk = new ArrayDisk(DISK);
    try (TestServer upstream = new TestServer(disk)) {
      NbdPlugin plugin = configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        assertThat(export.size()).isEqualTo(DISK);
        byte[] bytes = new byte[200_000];
        new Random(1).nextBytes(bytes);
        export.pwrite(ByteBuffer.wrap(bytes), 4096, Flags.FUA);
        assertThat(disk.fuaWrites.get()).isEqualTo(1);
        assertThat(read(export, 4096, bytes.length)).isEqualTo(bytes);
        assertThat(Arrays.copyOfRange(disk.data, 4096, 4096 + bytes.length)).isEqualTo(bytes);

        export.flush();
        assertThat(disk.flushes.get()).isEqualTo(1);

        export.zero(8192, 4096, Flags.MAY_TRIM);
        assertThat(disk.nativeZeroes.get()).isEqualTo(1);
        assertThat(disk.lastZeroFlags & Flags.MAY_TRIM).isEqualTo(Flags.MAY_TRIM);
        export.zero(16384, 4096, Flags.FAST_ZERO);
        assertThat(disk.lastZeroFlags & (Flags.MAY_TRIM | Flags.FAST_ZERO)).as("no hole, fast").isEqualTo(Flags.FAST_ZERO);
        assertThat(read(export, 8192, 4096)).containsOnly(0);
        assertThat(read(export, 16384, 4096)).containsOnly(0);

        export.trim(65536, 4096, 0);
        assertThat(read(export, 65536, 4096)).containsOnly(0);

        export.cache(0, 65536);
        assertThat(disk.caches.get()).isEqualTo(1);

        // Data from 4096 to 204096 except the zeroed and trimmed blocks; holes elsewhere.
        Extents extents = new Extents(0, DISK);
        export.extents(0, DISK, 0, extents);
        assertThat(extents.type(0)).isEqualTo(Extents.HOLE_ZERO);
        assertThat(extents.length(0)).isEqualTo(4096);
        assertThat(extents.type(1)).isEqualTo(Extents.DATA);
        assertThat(extents.type(extents.count() - 1)).isEqualTo(Extents.HOLE_ZERO);
        long total = 0;
        for (int i = 0; i < extents.count(); i++) {
          total += extents.length(i);
        }
        assertThat(total).isEqualTo(DISK);

        Extents one = new Extents(0, DISK);
        export.extents(0, DISK, Flags.REQ_ONE, one);
        assertThat(disk.lastExtentsFlags).isEqualTo(Flags.REQ_ONE);
        assertThat(one.count()).isEqualTo(1);
        assertThat(one.length(0)).isEqualTo(4096);
      }
      plugin.unload();
    }
  }

  @Test
  void capabilitiesAndBlockSizesAreTheUpstreams() throws Exception {
    ArrayDisk full = new ArrayDisk(DISK);
    ArrayDisk bare = new ArrayDisk(DISK);
    bare.flush = false;
    bare.fua = Support.NONE;
    bare.trim = false;
    bare.zero = Support.NONE;
    bare.fastZero = false;
    bare.extents = false;
    bare.cache = Support.NONE;
    bare.multiConn = false;
    try (TestServer fullServer = new TestServer(full); TestServer bareServer = new TestServer(bare)) {
      NbdPlugin toFull = configured("uri=" + fullServer.uri());
      try (Export export = toFull.open(false, "")) {
        assertThat(export.canWrite()).isTrue();
        assertThat(export.canFlush()).isTrue();
        assertThat(export.canFua()).isEqualTo(Support.NATIVE);
        assertThat(export.canTrim()).isTrue();
        assertThat(export.canZero()).isEqualTo(Support.NATIVE);
        assertThat(export.canFastZero()).isTrue();
        assertThat(export.canExtents()).isTrue();
        assertThat(export.canCache()).isEqualTo(Support.NATIVE);
        assertThat(export.canMultiConn()).isTrue();
        assertThat(export.blockSize()).isEqualTo(BlockSize.DEFAULT);
      }
      NbdPlugin toBare = configured("uri=" + bareServer.uri());
      try (Export export = toBare.open(false, "")) {
        assertThat(export.canWrite()).isTrue();
        assertThat(export.canFlush()).isFalse();
        assertThat(export.canFua()).isEqualTo(Support.NONE);
        assertThat(export.canTrim()).isFalse();
        // No WRITE_ZEROES upstream: the server writes zeroes, as under nbdkit.
        assertThat(export.canZero()).isEqualTo(Support.EMULATE);
        assertThat(export.canFastZero()).isFalse();
        assertThat(export.canExtents()).isTrue();
        assertThat(export.canCache()).isEqualTo(Support.NONE);
        assertThat(export.canMultiConn()).isFalse();
      }
      try (TestServer readOnlyServer = new TestServer(completed(full), ServerConfig.defaults().withReadOnly(true))) {
        NbdPlugin toReadOnly = configured("socket=" + readOnlyServer.socket());
        try (Export export = toReadOnly.open(false, "")) {
          assertThat(export.canWrite()).isFalse();
          assertThat(export.canZero()).isEqualTo(Support.NONE);
          assertThatThrownBy(() -> export.pwrite(ByteBuffer.allocate(512), 0, 0))
              .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EPERM));
        }
        toReadOnly.unload();
      }
      for (NbdPlugin plugin : List.of(toFull, toBare)) {
        plugin.unload();
      }
    }
  }

  @Test
  void upstreamErrorsKeepTheirErrno() throws Exception {
    FlakyDisk flaky = new FlakyDisk(DISK);
    try (TestServer upstream = new TestServer(flaky)) {
      NbdPlugin plugin = configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        for (Errno errno : List.of(Errno.EIO, Errno.ENOSPC, Errno.EINVAL, Errno.ENOTSUP, Errno.EPERM)) {
          flaky.errno = errno;
          flaky.failCalls(1);
          assertThatThrownBy(() -> read(export, 0, 512))
              .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(errno));
        }
        assertThat(read(export, 0, 512)).containsOnly(0);
      }
      plugin.unload();
    }
  }

  /** 16 threads share one upstream connection; each thread's data comes back to it. */
  @Test
  void sharedConnectionPipelinesManyCallers() throws Exception {
    ArrayDisk disk = new ArrayDisk(16 << 20);
    try (TestServer upstream = new TestServer(disk)) {
      NbdPlugin plugin = configured("socket=" + upstream.socket(), "shared=true");
      List<Export> exports = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        exports.add(plugin.open(false, ""));
      }
      try (ExecutorService threads = Executors.newFixedThreadPool(16)) {
        List<Future<Void>> results = new ArrayList<>();
        for (int t = 0; t < 16; t++) {
          int thread = t;
          Export export = exports.get(t % 4);
          results.add(threads.submit((Callable<Void>) () -> {
            Random random = new Random(thread);
            for (int i = 0; i < 100; i++) {
              int length = 1 + random.nextInt(64 * 1024);
              long offset = thread * (1L << 20) + random.nextInt((1 << 20) - length);
              byte[] bytes = new byte[length];
              random.nextBytes(bytes);
              export.pwrite(ByteBuffer.wrap(bytes), offset, 0);
              assertThat(read(export, offset, length)).isEqualTo(bytes);
            }
            return null;
          }));
        }
        for (Future<Void> result : results) {
          result.get();
        }
      }
      for (Export export : exports) {
        export.close();
      }
      // Closing the clients' exports keeps the shared connection: a new client still reads.
      try (Export export = plugin.open(false, "")) {
        assertThat(read(export, 0, 16)).isEqualTo(Arrays.copyOf(disk.data, 16));
      }
      assertThat(readerThreads()).isEqualTo(1);
      plugin.unload();
    }
    assertThat(readerThreads()).as("reader threads left").isZero();
  }

  @Test
  void largeRequestsAreSplitToTheUpstreamsMaximum() throws Exception {
    ArrayDisk disk = new ArrayDisk(40 << 20);
    try (TestServer upstream = new TestServer(disk)) {
      NbdPlugin plugin = configured("socket=" + upstream.socket());
      try (Export export = plugin.open(false, "")) {
        // A filter above may ask for more than a client could send in one request.
        byte[] bytes = new byte[36 << 20];
        new Random(3).nextBytes(bytes);
        export.pwrite(ByteBuffer.wrap(bytes), 512, 0);
        assertThat(read(export, 512, bytes.length)).isEqualTo(bytes);
      }
      plugin.unload();
    }
  }

  @Test
  void retryKeepsConnectingASecondApart() throws Exception {
    Path socket = dir.resolve("late.sock");
    NbdServer[] late = new NbdServer[1];
    List<Duration> waits = new ArrayList<>();
    // The upstream server starts listening during the second wait.
    Sleeper sleeper = duration -> {
      waits.add(duration);
      if (waits.size() == 2) {
        late[0] = new NbdServer(completed(new ArrayDisk(DISK)), ServerConfig.defaults());
        try {
          late[0].listenUnix(socket);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
    };
    NbdPlugin plugin = configured(sleeper, "socket=" + socket, "retry=5", "shared=true");
    try {
      assertThat(waits).isEqualTo(RecordingSleeper.seconds(1, 1));
      try (Export export = plugin.open(false, "")) {
        assertThat(export.size()).isEqualTo(DISK);
      }
    } finally {
      plugin.unload();
      late[0].close();
    }
    RecordingSleeper never = new RecordingSleeper();
    assertThatThrownBy(() -> configured(never, "socket=" + dir.resolve("absent.sock"), "retry=2", "shared=true"))
        .isInstanceOf(ConfigException.class)
        .hasMessageContaining("cannot connect to upstream " + dir.resolve("absent.sock"));
    assertThat(never.waits).hasSize(2);
  }

  /** Under --filter=retry, reads go on across a restart of the upstream server, shared or not. */
  @ParameterizedTest
  @ValueSource(strings = {"false", "true"})
  void theRetryFilterRidesOutAnUpstreamRestart(String shared) throws Exception {
    ArrayDisk disk = new ArrayDisk(DISK);
    new Random(5).nextBytes(disk.data);
    Path socket = dir.resolve("upstream.sock");
    NbdServer upstream = new NbdServer(completed(disk), ServerConfig.defaults());
    upstream.listenUnix(socket);
    Stack proxyStack = Stacks.configured(Layers.filter("retry"), new NbdPlugin(),
        "retries=5", "retry-delay=10ms", "retry-exponential=no", "socket=" + socket, "shared=" + shared, "retry=50");
    try (TestServer proxy = new TestServer(proxyStack, ServerConfig.defaults());
        NbdClient client = NbdClient.connect(Upstream.unix(proxy.socket(), ""), ClientTls.OFF)) {
      ByteBuffer before = ByteBuffer.allocate(4096);
      client.read(before, 0);
      assertThat(before.array()).isEqualTo(Arrays.copyOf(disk.data, 4096));
      upstream.close();
      upstream = new NbdServer(completed(disk), ServerConfig.defaults());
      upstream.listenUnix(socket);
      ByteBuffer after = ByteBuffer.allocate(4096);
      client.read(after, 8192);
      assertThat(after.array()).isEqualTo(Arrays.copyOfRange(disk.data, 8192, 8192 + 4096));
    } finally {
      upstream.close();
    }
  }

  private static Stack completed(ArrayDisk disk) {
    return Stacks.configured(List.of(), disk);
  }

  @Test
  void withoutSharingEachClientHasItsOwnConnectionClosedWithIt() throws Exception {
    FlakyDisk disk = new FlakyDisk(DISK);
    try (TestServer upstream = new TestServer(disk)) {
      NbdPlugin plugin = configured("socket=" + upstream.socket(), "shared=false");
      Export first = plugin.open(false, "");
      Export second = plugin.open(false, "");
      assertThat(disk.opens.get()).isEqualTo(2);
      first.close();
      second.close();
      // The upstream server closes its side once it has the DISC.
      assertThat(upstream.server().awaitClientsAtMost(0, Duration.ofSeconds(30))).as("upstream connections ended").isTrue();
      assertThat(disk.closes.get()).isEqualTo(2);
      plugin.unload();
    }
    assertThat(readerThreads()).as("reader threads left").isZero();
  }

  private static long readerThreads() {
    return Thread.getAllStackTraces().keySet().stream()
        .filter(thread -> thread.getName().startsWith("nbd-upstream-reader"))
        .count();
  }

  @Test
  void dynamicExportPassesTheClientsExportName() throws Exception {
    ArrayDisk disk = new ArrayDisk(DISK);
    try (TestServer upstream = new TestServer(disk)) {
      NbdPlugin plugin = configured("socket=" + upstream.socket(), "dynamic-export=true");
      // ArrayDisk refuses the export called "missing".
      assertThatThrownBy(() -> plugin.open(false, "missing"))
          .isInstanceOf(NbdException.class)
          .hasMessageContaining("upstream " + upstream.socket());
      try (Export export = plugin.open(false, "other")) {
        assertThat(export.size()).isEqualTo(DISK);
      }
      assertThat(plugin.listExports(false)).extracting(e -> e.name()).containsExactly("");
      plugin.unload();
    }
  }

  @Test
  void badConfigurationsAreRefusedWithTheReason() {
    assertThatThrownBy(() -> configured()).hasMessageContaining("exactly one of uri=, hostname=, socket= or command=");
    assertThatThrownBy(() -> configured("socket=/a", "hostname=b")).hasMessageContaining("exactly one of");
    assertThatThrownBy(() -> configured("socket=/a", "port=1")).hasMessageContaining("port= goes with hostname=");
    assertThatThrownBy(() -> configured("uri=nbds://host/x", "tls=off")).hasMessageContaining("tls=off contradicts the nbds URI");
    assertThatThrownBy(() -> configured("uri=http://host/")).hasMessageContaining("not an NBD URI");
    assertThatThrownBy(() -> configured("uri=nbd+unix:///x")).hasMessageContaining("needs ?socket=PATH");
    assertThatThrownBy(() -> configured("uri=nbd+unix:///?socket=/a", "export=x")).hasMessageContaining("put the export name in the URI");
    assertThatThrownBy(() -> configured("socket=/a", "tls=maybe")).hasMessageContaining("nbd: tls=maybe: must be off, on or require");
    assertThatThrownBy(() -> configured("socket=/a", "tls-psk=/no/such.psk")).hasMessageContaining("nbd: tls-psk: /no/such.psk");
    assertThatThrownBy(() -> configured("socket=/a", "tls-certificates=/no/such")).hasMessageContaining("/no/such is not a directory");
    assertThatThrownBy(() -> configured("socket=/a", "tls-certificates=/tmp", "tls-psk=/k"))
        .hasMessageContaining("tls-psk and tls-certificates cannot be used together");
    assertThatThrownBy(() -> configured("vsock=2")).hasMessageContaining("vsock");
    assertThatThrownBy(() -> configured("socket=/a", "shared=true", "dynamic-export=true")).hasMessageContaining("dynamic-export=true cannot be used");
    assertThatThrownBy(() -> configured("socket=/a", "arg=x")).hasMessageContaining("arg= goes with command=");
    assertThatThrownBy(() -> configured("hostname=h", "port=x")).hasMessageContaining("nbd: port");
    assertThatThrownBy(() -> configured("socket=/a", "retry=-1")).hasMessageContaining("nbd: retry");
    assertThatThrownBy(() -> configured("command=qemu-nbd", "shared=false")).hasMessageContaining("shared=false is not possible");
    assertThatThrownBy(() -> configured("socket=/a", "dynamic-export=true", "export=x"))
        .hasMessageContaining("export= cannot be used with dynamic-export=true");
    assertThatThrownBy(() -> configured("hostname=a", "hostname=b")).hasMessageContaining("hostname= given twice");
    assertThatThrownBy(() -> configured("hostname=a", "port=1", "port=2")).hasMessageContaining("port= given twice");
  }

  @Test
  void urisNameHostPortSocketAndExport() {
    assertThat(Upstream.fromUri("nbd://example.com/disk%201")).isEqualTo(Upstream.tcp("example.com", 10809, "disk 1"));
    assertThat(Upstream.fromUri("nbd://[::1]:10810")).isEqualTo(Upstream.tcp("::1", 10810, ""));
    assertThat(Upstream.fromUri("nbd+unix:///exp?socket=/tmp/s%20k")).isEqualTo(Upstream.unix(Path.of("/tmp/s k"), "exp"));
    assertThat(Upstream.fromUri("NBD+UNIX:///?socket=/tmp/s")).isEqualTo(Upstream.unix(Path.of("/tmp/s"), ""));
    assertThat(Upstream.fromUri("nbds://example.com:10810/d"))
        .isEqualTo(new Upstream("example.com", 10810, null, "d", true));
    assertThat(Upstream.fromUri("nbds+unix:///d?socket=/tmp/s")).isEqualTo(new Upstream(null, 0, Path.of("/tmp/s"), "d", true));
  }

  @Test
  void aMissingSocketFailsTheOpenWithEio() throws Exception {
    Path socket = dir.resolve("nobody.sock");
    Files.deleteIfExists(socket);
    NbdPlugin plugin = configured("socket=" + socket);
    assertThatThrownBy(() -> plugin.open(false, ""))
        .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
        .hasMessageContaining("cannot connect to upstream " + socket);
    plugin.unload();
  }
}
