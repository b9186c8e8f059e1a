package io.jnbd.filters.delay;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.RecordingSleeper;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** A real client's requests through the delay filter, with a sleeper that only records. */
@Tag("slow")
class DelayRealClientsTest {
  @Test
  void nbdshRequestsWaitTheirDelaysAndADelayedFastZeroFailsFast() throws Exception {
    Tools.require("nbdsh");
    RecordingSleeper sleeper = new RecordingSleeper();
    DelayFilter delay = new DelayFilter(sleeper);
    for (String keyValue : List.of("rdelay=100ms", "wdelay=2", "delay-fast-zero=false", "delay-open=5ms")) {
      String[] parts = keyValue.split("=", 2);
      delay.config(parts[0], parts[1]);
    }
    ArrayDisk disk = new ArrayDisk(1 << 20);
    try (TestServer server = new TestServer(List.of(delay), disk, ServerConfig.defaults())) {
      Tools.run(List.of("nbdsh", "-u", server.uri(), "-c", """
          import errno
          h.pwrite(b"x" * 512, 0)
          assert h.pread(512, 0) == b"x" * 512
          h.zero(512, 0)
          try:
              h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)
              raise AssertionError("a delayed fast zero should fail")
          except nbd.Error as e:
              assert e.errnum == errno.ENOTSUP, e
          h.flush()
          """), Map.of(), 60).assertSuccess();
    }
    assertThat(sleeper.waits).containsExactly(Duration.ofMillis(5), Duration.ofSeconds(2), Duration.ofMillis(100), Duration.ofSeconds(2));
  }
}
