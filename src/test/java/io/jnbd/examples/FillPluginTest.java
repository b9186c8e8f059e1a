package io.jnbd.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The README's example plugin works as printed: configured by key, served, read by a real client. */
class FillPluginTest {
  @Test
  void servesTheConfiguredByte() throws Exception {
    Tools.require("nbdsh");
    FillPlugin plugin = new FillPlugin();
    plugin.config("size", "64k");
    plugin.config("byte", "171");
    try (TestServer server = new TestServer(List.of(), plugin, ServerConfig.defaults())) {
      String out = Tools.run(List.of("nbdsh", "-u", server.uri(), "-c",
          "print(h.get_size(), h.is_read_only(), set(h.pread(4096, 1000)))"), Map.of(), 60)
          .assertSuccess().stdout();
      assertThat(out.trim()).isEqualTo("65536 True {171}");
    }
  }
}
