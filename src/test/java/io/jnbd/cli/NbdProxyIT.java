package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.server.ServerConfig;
import io.jnbd.testing.Layers;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * virt-v2v's server line for an NBD disk in libvirt XML, word for word, through the packaged
 * jar: {@code --filter cow nbd hostname=H port=P shared=true} (or {@code uri=}), copied by
 * nbdcopy with 64 requests in flight and a flush, byte-identical to the upstream's disk.
 */
@Tag("slow")
class NbdProxyIT {
  @TempDir Path dir;

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"hostname", "uri"})
  void virtV2vsNbdLineCopiesTheUpstreamDiskIdentically(String addressing) throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[16 << 20];
    Random random = new Random(11);
    for (int i = 0; i < image.length; i += 1 << 20) {
      if (random.nextInt(4) != 0) {
        byte[] block = new byte[1 << 20];
        random.nextBytes(block);
        System.arraycopy(block, 0, image, i, block.length);
      }
    }
    Path disk = Files.write(dir.resolve("disk.img"), image);
    try (TestServer upstream = new TestServer(List.of(), Layers.plugin("file", "file=" + disk), ServerConfig.defaults()).withTcp()) {
      List<String> line = new ArrayList<>(List.of("--filter", "cow", "nbd"));
      if (addressing.equals("uri")) {
        line.add("uri=nbd://127.0.0.1:" + upstream.port() + "/");
      } else {
        line.addAll(List.of("hostname=127.0.0.1", "port=" + upstream.port()));
      }
      line.add("shared=true");
      ProcessIT.copyThroughVirtV2vServer(dir, line, image);
      assertThat(Files.readAllBytes(disk)).as("cow kept the upstream untouched").isEqualTo(image);
    }
  }
}
