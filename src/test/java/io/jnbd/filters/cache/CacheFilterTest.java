package io.jnbd.filters.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Filter;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.SlowDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class CacheFilterTest {
  @Test
  void isFoundByNameAndClaimsOnlyItsKeys() {
    Filter cache = Catalog.filter("cache");
    assertThat(cache).isInstanceOf(CacheFilter.class);
    assertThat(cache.config("cache", "writethrough")).isTrue();
    assertThat(cache.config("cache-storage", "memory")).isTrue();
    assertThat(cache.config("cache-min-block-size", "4K")).isTrue();
    assertThat(cache.config("url", "http://x")).isFalse();
    assertThat(cache.parameters()).extracting(p -> p.key())
        .containsExactlyInAnyOrder("cache", "cache-on-read", "cache-max-size", "cache-high-threshold",
            "cache-low-threshold", "cache-min-block-size", "cache-storage");
  }

  @Test
  void rejectsBadValuesNamingTheKey() {
    CacheFilter cache = new CacheFilter();
    assertThatThrownBy(() -> cache.config("cache", "sometimes")).isInstanceOf(ConfigException.class).hasMessageContaining("cache");
    assertThatThrownBy(() -> cache.config("cache-storage", "disk")).isInstanceOf(ConfigException.class).hasMessageContaining("cache-storage");
    cache.config("cache-high-threshold", "50");
    cache.config("cache-low-threshold", "60");
    assertThatThrownBy(cache::configComplete).isInstanceOf(ConfigException.class).hasMessageContaining("cache-low-threshold");
    for (String blockSize : List.of("3000", "2k", "64M", "8G")) {
      CacheFilter odd = new CacheFilter();
      odd.config("cache-min-block-size", blockSize);
      assertThatThrownBy(odd::configComplete).as(blockSize).isInstanceOf(ConfigException.class)
          .hasMessageStartingWith("cache: cache-min-block-size must be a power of 2 from 4K to 32M");
    }
    CacheFilter tooSmall = new CacheFilter();
    tooSmall.config("cache-max-size", "4k");
    assertThatThrownBy(tooSmall::configComplete).isInstanceOf(ConfigException.class).hasMessageContaining("cache-max-size");
  }

  /** NBD_CMD_CACHE from a real client fills the cache with one read below; reads then hit. */
  @Test
  @Tag("slow")
  void answersNbdCacheFromRealClients() throws Exception {
    Tools.require("nbdsh");
    SlowDisk disk = new SlowDisk(16 << 20, 0, 9);
    CacheFilter cache = new CacheFilter();
    cache.configComplete();
    try (TestServer server = new TestServer(List.of(cache), disk, ServerConfig.defaults())) {
      Tools.nbdsh(server.uri(), String.join("\n",
              "assert h.can_cache()",
              "h.cache(8 * 1024 * 1024, 1024 * 1024)",
              "for i in range(32):",
              "    h.pread(256 * 1024, 1024 * 1024 + i * 256 * 1024)"))
          .assertSuccess();
      assertThat(disk.preads.get()).isEqualTo(1);
      assertThat(cache.cacheOf("").stats().hits.sum()).isEqualTo(32);
    }
  }
}
