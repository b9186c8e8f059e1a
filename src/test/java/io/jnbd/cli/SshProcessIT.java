package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.MinaSftpServer;
import io.jnbd.testing.OpenSshServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged jar run as virt-v2v runs nbdkit for an input over ssh (vmx+ssh, xen): its server
 * line word for word, then its copy, nbdcopy with 64 requests in flight and a flush.
 */
@Tag("slow")
class SshProcessIT {
  @TempDir Path dir;

  /** virt-v2v's prefix and filters, then the ssh plugin with {@code pluginArgs}, copied and compared. */
  private void copyThroughVirtV2vsLine(List<String> pluginArgs, byte[] image) throws Exception {
    List<String> line = new ArrayList<>(List.of("--readonly",
        "--filter", "cow", "--filter", "cacheextents", "--filter", "retry", "ssh"));
    line.addAll(pluginArgs);
    line.add("cow-on-read=" + dir.resolve("convert"));
    ProcessIT.copyThroughVirtV2vServer(dir, line, image);
  }

  private static byte[] image(long seed) {
    byte[] image = new byte[(8 << 20) + 4096];
    new Random(seed).nextBytes(image);
    return image;
  }

  @Test
  void virtV2vsSshLineWithAPasswordFileCopiesIdentically() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = image(21);
    Path remote = dir.resolve("guest-flat.vmdk");
    Files.write(remote, image);
    Path password = dir.resolve("password");
    Files.writeString(password, "s3cret\n");
    try (MinaSftpServer sshd = new MinaSftpServer("v2v", "s3cret")) {
      Path knownHosts = dir.resolve("known_hosts");
      Files.writeString(knownHosts, sshd.knownHostsLine() + "\n");
      copyThroughVirtV2vsLine(List.of("host=127.0.0.1", "path=" + remote, "port=" + sshd.port(), "user=v2v",
          "password=+" + password, "known-hosts=" + knownHosts), image);
    }
  }

  @Test
  void virtV2vsSshLineAgainstOpenSshWithAKeyCopiesIdentically() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = image(22);
    try (OpenSshServer sshd = new OpenSshServer("ed25519")) {
      Path remote = sshd.directory().resolve("guest-flat.vmdk");
      Files.write(remote, image);
      copyThroughVirtV2vsLine(sshd.pluginArgs(remote), image);
    }
  }
}
