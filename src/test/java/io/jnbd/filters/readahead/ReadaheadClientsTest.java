package io.jnbd.filters.readahead;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Filter;
import io.jnbd.filters.cache.CacheFilter;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.SlowDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real clients copy an image through readahead and cache over a slow disk, byte for byte. */
@Tag("slow")
class ReadaheadClientsTest {
  private static final int SIZE = 32 << 20;

  @TempDir Path dir;

  private TestServer server(SlowDisk disk) {
    ReadaheadFilter readahead = new ReadaheadFilter();
    readahead.config("readahead-max-window", "8M");
    CacheFilter cache = new CacheFilter();
    cache.config("cache-max-size", "16M");
    cache.configComplete();
    return new TestServer(List.<Filter>of(readahead, cache), disk, ServerConfig.defaults());
  }

  @Test
  void serialNbdcopyMakesAnIdenticalCopyFromFewReadsBelow() throws Exception {
    Tools.require("nbdcopy");
    SlowDisk disk = new SlowDisk(SIZE, 2, 21);
    Path copy = dir.resolve("copy.img");
    try (TestServer server = server(disk)) {
      Tools.run(List.of("nbdcopy", "--requests=1", "--connections=1", server.uri(), copy.toString()), java.util.Map.of(), 120)
          .assertSuccess();
    }
    assertThat(Arrays.mismatch(Files.readAllBytes(copy), disk.data)).as("first wrong byte").isEqualTo(-1);
    assertThat(disk.preads.get()).isLessThan(SIZE / (256 * 1024) / 4);
    assertThat(disk.bytes.get()).isLessThanOrEqualTo((long) (SIZE * 1.10));
  }

  @Test
  void qemuImgConvertMakesAnIdenticalCopy() throws Exception {
    Tools.require("qemu-img");
    SlowDisk disk = new SlowDisk(SIZE, 2, 22);
    Path copy = dir.resolve("copy.raw");
    try (TestServer server = server(disk)) {
      Tools.run(List.of("qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri(), copy.toString()), java.util.Map.of(), 120)
          .assertSuccess();
    }
    assertThat(Arrays.mismatch(Files.readAllBytes(copy), disk.data)).as("first wrong byte").isEqualTo(-1);
    assertThat(disk.bytes.get()).isLessThanOrEqualTo((long) (SIZE * 1.10));
  }
}
