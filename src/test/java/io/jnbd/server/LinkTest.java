package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import io.jnbd.api.ThreadModel;
import io.jnbd.filters.readahead.ReadaheadFilter;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The server's links between layers: what every call through a filter's {@code next} is held to. */
class LinkTest {
  private static final int SIZE = 1 << 20;

  /** A plugin that counts how many of its reads overlap and can be told to misbehave. */
  static final class WatchedPlugin implements Plugin {
    final ThreadModel model;
    final AtomicInteger running = new AtomicInteger();
    final AtomicInteger mostAtOnce = new AtomicInteger();
    final AtomicInteger reads = new AtomicInteger();
    volatile int shortBy;
    /** When set, each read counts it down and waits (boundedly) for the others it counts. */
    volatile CountDownLatch company;

    WatchedPlugin(ThreadModel model) {
      this.model = model;
    }

    @Override public String name() { return "watched"; }
    @Override public String description() { return "counts overlapping reads"; }
    @Override public ThreadModel threadModel() { return model; }
    @Override public boolean config(String key, String value) { return false; }

    @Override
    public Export open(boolean readOnly, String exportName) {
      return new Export() {
        @Override public long size() { return SIZE; }

        @Override
        public void pread(ByteBuffer buffer, long offset) throws IOException {
          reads.incrementAndGet();
          mostAtOnce.accumulateAndGet(running.incrementAndGet(), Math::max);
          try {
            CountDownLatch meeting = company;
            if (meeting != null) {
              meeting.countDown();
              // Bounded: under a serializing link the others can never arrive, and the test fails.
              meeting.await(10, TimeUnit.SECONDS);
            } else {
              Thread.sleep(2);
            }
          } catch (InterruptedException e) {
            throw new IOException(e);
          } finally {
            running.decrementAndGet();
          }
          buffer.position(buffer.limit() - shortBy);
        }
      };
    }
  }

  /** A filter whose export is whatever the test makes of the link it is given. */
  record TestFilter(UnaryOperator<Export> wrap) implements Filter {
    @Override public String name() { return "testfilter"; }
    @Override public String description() { return "wraps next as a test says"; }

    @Override
    public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
      return wrap.apply(next.open(readOnly, exportName));
    }
  }

  private static Export open(Filter filter, Plugin plugin) throws IOException {
    return Stacks.configured(filter, plugin).open(true, "");
  }

  /** A filter that reads below from eight threads of its own for every read, as prefetchers do. */
  private static Filter fanningOut() {
    return new TestFilter(next -> new FilterExport(next) {
      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        ExecutorService threads = Executors.newFixedThreadPool(8);
        try {
          CountDownLatch start = new CountDownLatch(1);
          List<Future<Void>> reads = new ArrayList<>();
          for (int i = 0; i < 8; i++) {
            long at = offset + i * 4096L;
            Callable<Void> read = () -> {
              start.await();
              next.pread(ByteBuffer.allocate(4096), at);
              return null;
            };
            reads.add(threads.submit(read));
          }
          start.countDown();
          for (Future<Void> read : reads) {
            read.get(30, TimeUnit.SECONDS);
          }
        } catch (Exception e) {
          throw new IOException(e);
        } finally {
          threads.shutdownNow();
        }
        next.pread(buffer, offset);
      }
    });
  }

  @ParameterizedTest
  @EnumSource(value = ThreadModel.class, names = {"SERIALIZE_REQUESTS", "SERIALIZE_ALL_REQUESTS", "SERIALIZE_CONNECTIONS"})
  void aSerializingLayerGetsOneCallAtATimeEvenFromAFiltersOwnThreads(ThreadModel model) throws IOException {
    WatchedPlugin plugin = new WatchedPlugin(model);
    try (Export export = open(fanningOut(), plugin)) {
      export.pread(ByteBuffer.allocate(4096), 0);
    }
    assertThat(plugin.reads.get()).isEqualTo(9);
    assertThat(plugin.mostAtOnce.get()).isEqualTo(1);
  }

  @Test
  void aParallelLayerIsNotSerialized() throws IOException {
    WatchedPlugin plugin = new WatchedPlugin(ThreadModel.PARALLEL);
    // Two of the fanned-out reads must be inside the plugin together: each waits for the other.
    plugin.company = new CountDownLatch(2);
    try (Export export = open(fanningOut(), plugin)) {
      export.pread(ByteBuffer.allocate(4096), 0);
    }
    assertThat(plugin.mostAtOnce.get()).isGreaterThan(1);
  }

  @Test
  void aFilterReadingPastTheEndIsStoppedAndNamed() throws IOException {
    WatchedPlugin plugin = new WatchedPlugin(ThreadModel.PARALLEL);
    Filter pastTheEnd = new TestFilter(next -> new FilterExport(next) {
      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        next.pread(buffer, offset + SIZE);
      }
    });
    try (Export export = open(pastTheEnd, plugin)) {
      assertThatThrownBy(() -> export.pread(ByteBuffer.allocate(512), 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL))
          .hasMessage("testfilter: pread of 512 bytes at 1048576 is outside watched's 1048576 bytes");
    }
    assertThat(plugin.reads.get()).isZero();
  }

  @Test
  void aShortReadIsAnErrorNamingTheLayerNotWrongData() throws IOException {
    WatchedPlugin plugin = new WatchedPlugin(ThreadModel.PARALLEL);
    plugin.shortBy = 100;
    try (Export export = open(new TestFilter(UnaryOperator.identity()), plugin)) {
      assertThatThrownBy(() -> export.pread(ByteBuffer.allocate(512), 0))
          .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
          .hasMessage("watched: pread of 512 bytes at 0 left 100 bytes unfilled");
    }
  }

  @Test
  void flagsAnOperationDoesNotTakeAreRefused() throws IOException {
    Filter badFlags = new TestFilter(next -> new FilterExport(next) {
      @Override
      public void trim(long offset, long length, int flags) throws IOException {
        next.trim(offset, length, flags | 0x40);
      }
    });
    try (Export export = open(badFlags, new ArrayDisk(SIZE))) {
      assertThatThrownBy(() -> export.trim(0, 4096, 0))
          .isInstanceOf(NbdException.class)
          .hasMessage("testfilter: trim to arraydisk with flags 0x40 it does not take");
    }
  }

  @Test
  void withChecksAWriteToALayerThatIsNotWritableIsRefused() throws IOException {
    ArrayDisk disk = new ArrayDisk(SIZE);
    disk.writable = false;
    Filter writesAnyway = new TestFilter(next -> new FilterExport(next) {
      @Override
      public boolean canWrite() {
        return true;
      }
    });
    Stack stack = new Stack(List.of(writesAnyway), disk, new DebugFlags(true, false, true));
    stack.configComplete();
    try (Export export = stack.open(false, "")) {
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.allocate(512), 0, 0))
          .isInstanceOf(NbdException.class)
          .hasMessage("testfilter: pwrite sent to arraydisk, a layer that is not writable");
    }
  }

  @Test
  void readaheadPassesThroughOverASerializingPlugin() throws IOException {
    WatchedPlugin plugin = new WatchedPlugin(ThreadModel.SERIALIZE_REQUESTS);
    try (Export export = open(new ReadaheadFilter(), plugin)) {
      for (long offset = 0; offset < 64 * 4096; offset += 4096) {
        export.pread(ByteBuffer.allocate(4096), offset);
      }
    }
    assertThat(plugin.reads.get()).as("reads below: no prefetch, no cache of its own").isEqualTo(64);
  }

  @Test
  void underReadaheadASerializeAllRequestsPluginNeverSeesTwoCallsAtOnce() throws Exception {
    WatchedPlugin plugin = new WatchedPlugin(ThreadModel.SERIALIZE_ALL_REQUESTS);
    Stack stack = Stacks.configured(new ReadaheadFilter(), plugin);
    ExecutorService clients = Executors.newFixedThreadPool(4);
    try {
      List<Future<Void>> reads = new ArrayList<>();
      for (int connection = 0; connection < 4; connection++) {
        Export export = stack.open(true, "");
        reads.add(clients.submit(() -> {
          try (export) {
            for (long offset = 0; offset < 48 * 4096; offset += 4096) {
              export.pread(ByteBuffer.allocate(4096), offset);
            }
          }
          return null;
        }));
      }
      for (Future<Void> read : reads) {
        read.get(60, TimeUnit.SECONDS);
      }
    } finally {
      clients.shutdownNow();
      stack.unload();
    }
    assertThat(plugin.reads.get()).isGreaterThanOrEqualTo(4 * 48);
    assertThat(plugin.mostAtOnce.get()).isEqualTo(1);
  }

  @Test
  void debugFlagsParseAsNbdkitWritesThem() {
    DebugFlags flags = DebugFlags.parse(List.of("nbdkit.backend.datapath=0", "jnbd.layers=1", "file.zero=1"));
    assertThat(flags.datapath()).isFalse();
    assertThat(flags.layers()).isTrue();
    assertThat(DebugFlags.parse(List.of("jnbd.layers=1", "jnbd.layers=0")).layers()).isFalse();
    assertThat(DebugFlags.parse(List.of()).datapath()).isTrue();
  }
}
