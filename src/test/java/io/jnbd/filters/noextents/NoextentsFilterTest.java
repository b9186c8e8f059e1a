package io.jnbd.filters.noextents;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.Layers;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("slow")
class NoextentsFilterTest {
  /** The memory plugin is all holes but one page; through noextents nbdinfo sees one data extent. */
  @Test
  void nbdinfoSeesTheWholeExportAsData() throws Exception {
    Tools.require("nbdinfo", "nbdsh");
    try (TestServer plain = new TestServer(Layers.plugin("memory", "size=4M"));
        TestServer filtered = new TestServer(List.of(Layers.filter("noextents")), Layers.plugin("memory", "size=4M"), ServerConfig.defaults())) {
      for (TestServer server : List.of(plain, filtered)) {
        Tools.nbdsh(server.uri(), "h.pwrite(b'x', 1048576)").assertSuccess();
      }
      assertThat(map(plain.uri())).hasSizeGreaterThan(1);
      assertThat(map(filtered.uri())).containsExactly("0 4194304 0");
      Tools.nbdshWithExtents(filtered.uri(), "assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)").assertSuccess();
    }
  }

  private static List<String> map(String uri) {
    return Tools.run("nbdinfo", "--map", uri).assertSuccess().stdout().lines()
        .map(line -> String.join(" ", List.of(line.trim().split("\\s+")).subList(0, 3))).toList();
  }
}
