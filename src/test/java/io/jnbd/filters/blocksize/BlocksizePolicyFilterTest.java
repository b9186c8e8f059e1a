package io.jnbd.filters.blocksize;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class BlocksizePolicyFilterTest {
  @Test
  void replacesOnlyWhatIsConfigured() {
    BlocksizePolicyFilter filter = new BlocksizePolicyFilter();
    assertThat(filter.config("blocksize-preferred", "64k")).isTrue();
    assertThat(filter.config("size", "1M")).isFalse();
    filter.configComplete();
    assertThat(filter.merge(new BlockSize(512, 1 << 20, 32 << 20))).isEqualTo(new BlockSize(512, 65536, 32 << 20));
    assertThat(filter.merge(null)).isEqualTo(new BlockSize(1, 65536, 32 << 20));
  }

  @Test
  void impossibleConstraintsAreConfigErrors() {
    BlocksizePolicyFilter filter = new BlocksizePolicyFilter();
    filter.config("blocksize-preferred", "3000");
    assertThatThrownBy(filter::configComplete).isInstanceOf(ConfigException.class).hasMessageContaining("preferred");
    BlocksizePolicyFilter largeMinimum = new BlocksizePolicyFilter();
    largeMinimum.config("blocksize-minimum", "16k");
    largeMinimum.configComplete();
    // The preferred and maximum sizes from below are raised to fit the larger minimum.
    assertThat(largeMinimum.merge(new BlockSize(512, 4096, 1 << 20))).isEqualTo(new BlockSize(16384, 16384, 1 << 20));
    assertThat(largeMinimum.merge(null)).isEqualTo(new BlockSize(16384, 16384, 32 << 20));
    BlocksizePolicyFilter huge = new BlocksizePolicyFilter();
    huge.config("blocksize-maximum", "8G");
    assertThatThrownBy(huge::configComplete).isInstanceOf(ConfigException.class)
        .hasMessage("blocksize-policy: blocksize-maximum: must be between 1 and 4294967295: 8589934592");
  }

  @Test
  @Tag("slow")
  void clientsSeeAndMustObeyTheAdvertisedConstraints() throws Exception {
    Tools.require("nbdsh");
    BlocksizePolicyFilter filter = new BlocksizePolicyFilter();
    filter.config("blocksize-minimum", "512");
    filter.config("blocksize-preferred", "128k");
    filter.config("blocksize-maximum", "1M");
    try (TestServer server = new TestServer(List.of(filter), new ArrayDisk(4 << 20), ServerConfig.defaults())) {
      String script = """
          import errno, nbd
          h = nbd.NBD()
          h.set_strict_mode(0)
          h.connect_uri(URI)
          print(h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED), h.get_block_size(nbd.SIZE_MAXIMUM))
          for length in (100, 2 << 20):
              try:
                  h.pread(length, 0)
                  print("accepted", length)
              except nbd.Error as e:
                  print("refused", length, errno.errorcode[e.errnum])
          """.replace("URI", "'" + server.uri() + "'");
      String out = Tools.run(List.of("nbdsh", "-c", script), Map.of(), 60).assertSuccess().stdout();
      assertThat(out.lines()).containsExactly("512 131072 1048576", "refused 100 EINVAL", "refused 2097152 EINVAL");
    }
  }
}
