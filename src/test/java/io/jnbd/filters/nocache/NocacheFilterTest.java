package io.jnbd.filters.nocache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Support;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Layers;
import io.jnbd.testing.SlowDisk;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NocacheFilterTest {
  @Test
  void rejectsBadValuesNamingTheKey() {
    NocacheFilter nocache = new NocacheFilter();
    assertThatThrownBy(() -> nocache.config("cachemode", "passthrough")).isInstanceOf(ConfigException.class)
        .hasMessage("nocache: cachemode: must be none|emulate|nop: 'passthrough'");
    assertThat(nocache.config("size", "1M")).isFalse();
  }

  /** A filter above may call cache on an emulating nocache: the range is read below. */
  @Test
  void emulatesCacheForTheLayerAbove() throws Exception {
    SlowDisk disk = new SlowDisk(4 << 20, 0, 1);
    Stack stack = Stacks.configured(Layers.filter("nocache", "cachemode=emulate"), disk);
    try (Export export = stack.open(false, "")) {
      assertThat(export.canCache()).isEqualTo(Support.EMULATE);
      export.cache(0, 3 << 20);
    }
    assertThat(disk.bytes.get()).isEqualTo(3 << 20);
  }

  /** nbdsh sends one cache request, where advertised: it never reaches the disk's own cache. */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"cachemode=none, False", "cachemode=emulate, True", "cachemode=nop, True"})
  @Tag("slow")
  void nbdshSeesTheModes(String args, String canCache) throws Exception {
    Tools.require("nbdsh");
    ArrayDisk disk = new ArrayDisk(1 << 20);
    try (TestServer server = new TestServer(List.of(Layers.filter("nocache", args)), disk, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), String.join("\n",
              "assert h.can_cache() == " + canCache + ", h.can_cache()",
              "if h.can_cache():",
              "    h.cache(65536, 0)"))
          .assertSuccess();
    }
    assertThat(disk.caches.get()).isZero();
  }

  /** Emulated, a client's cache request becomes a read of the range. */
  @Test
  @Tag("slow")
  void nbdshCacheRequestsAreReadsWhenEmulated() throws Exception {
    Tools.require("nbdsh");
    SlowDisk disk = new SlowDisk(1 << 20, 0, 2);
    try (TestServer server = new TestServer(List.of(Layers.filter("nocache", "cachemode=emulate")), disk, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), "h.cache(65536, 4096)").assertSuccess();
    }
    assertThat(disk.bytes.get()).isEqualTo(65536);
  }
}
