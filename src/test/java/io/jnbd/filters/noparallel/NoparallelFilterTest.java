package io.jnbd.filters.noparallel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.ThreadModel;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.TestPlugin;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class NoparallelFilterTest {
  private static NoparallelFilter filter(String serialize) {
    NoparallelFilter filter = new NoparallelFilter();
    filter.config("serialize", serialize);
    filter.configComplete();
    return filter;
  }

  @Test
  void serializeSetsTheThreadModel() {
    assertThat(new NoparallelFilter().threadModel()).isEqualTo(ThreadModel.SERIALIZE_REQUESTS);
    assertThat(filter("all-requests").threadModel()).isEqualTo(ThreadModel.SERIALIZE_ALL_REQUESTS);
    assertThat(filter("all_requests").threadModel()).isEqualTo(ThreadModel.SERIALIZE_ALL_REQUESTS);
    assertThat(filter("connections").threadModel()).isEqualTo(ThreadModel.SERIALIZE_CONNECTIONS);
    assertThat(new NoparallelFilter().config("size", "1M")).isFalse();
    assertThatThrownBy(() -> filter("connection")).isInstanceOf(ConfigException.class).hasMessageContaining("serialize");
  }

  /** A disk whose reads take a few milliseconds and record how many ran at once. */
  private static final class OverlapDisk extends TestPlugin {
    final AtomicInteger inFlight = new AtomicInteger();
    final AtomicInteger mostAtOnce = new AtomicInteger();

    OverlapDisk() {
      super("overlap", "records overlapping reads");
    }

    @Override
    public Export open(boolean readOnly, String exportName) {
      return new Export() {
        @Override
        public long size() {
          return 1 << 20;
        }

        @Override
        public void pread(ByteBuffer buffer, long offset) throws InterruptedIOException {
          mostAtOnce.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
          try {
            Thread.sleep(5);
          } catch (InterruptedException e) {
            throw new InterruptedIOException();
          } finally {
            inFlight.decrementAndGet();
          }
          buffer.position(buffer.limit());
        }
      };
    }
  }

  /** Two connections with 8 reads in flight each: how many reached the disk at once. */
  private static int mostReadsAtOnce(NoparallelFilter filter) {
    OverlapDisk disk = new OverlapDisk();
    try (TestServer server = new TestServer(List.of(filter), disk, ServerConfig.defaults())) {
      String script = """
          import nbd
          handles = [nbd.NBD(), nbd.NBD()]
          for h in handles:
              h.connect_uri(URI)
          for h in handles:
              for i in range(8):
                  h.aio_pread(nbd.Buffer(512), i * 512)
          while any(h.aio_in_flight() > 0 for h in handles):
              for h in handles:
                  if h.aio_in_flight() > 0:
                      h.poll(10)
          """.replace("URI", "'" + server.uri() + "'");
      Tools.run(List.of("nbdsh", "-c", script), Map.of(), 60).assertSuccess();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
    return disk.mostAtOnce.get();
  }

  @Test
  @Tag("slow")
  void requestsRunOneAtATimePerConnectionOrOverall() {
    Tools.require("nbdsh");
    assertThat(mostReadsAtOnce(filter("requests"))).isBetween(1, 2);
    assertThat(mostReadsAtOnce(filter("all-requests"))).isEqualTo(1);
  }

  @Test
  @Tag("slow")
  void connectionsModeAdmitsOneClientAtATimeAndWithdrawsMultiConn() throws Exception {
    Tools.require("nbdsh", "nbdinfo");
    try (TestServer server = new TestServer(List.of(filter("connections")), new OverlapDisk(),
        ServerConfig.defaults().withReadOnly(true))) {
      assertThat(Tools.run("nbdinfo", "--can", "multi-conn", server.uri()).exitCode()).isEqualTo(2);
      String script = """
          import nbd, time
          first = nbd.NBD()
          first.connect_uri(URI)
          second = nbd.NBD()
          second.aio_connect_uri(URI)
          deadline = time.monotonic() + 0.5
          while time.monotonic() < deadline:
              second.poll(50)
          print("second waits" if second.aio_is_connecting() else "second connected")
          first.shutdown()
          while second.aio_is_connecting():
              second.poll(-1)
          print(second.get_size())
          """.replace("URI", "'" + server.uri() + "'");
      String out = Tools.run(List.of("nbdsh", "-c", script), Map.of(), 60).assertSuccess().stdout();
      assertThat(out.lines()).containsExactly("second waits", "1048576");
    }
  }
}
