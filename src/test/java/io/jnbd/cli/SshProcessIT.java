package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.MinaSftpServer;
import io.jnbd.testing.OpenSshServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
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
    Path socket = dir.resolve("in.sock");
    Path pidfile = dir.resolve("in.pid");
    List<String> line = new ArrayList<>(List.of("--exit-with-parent", "--foreground", "--pidfile", pidfile.toString(),
        "--unix", socket.toString(), "--threads", "16", "-D", "nbdkit.backend.datapath=0", "--readonly",
        "--filter", "cow", "--filter", "cacheextents", "--filter", "retry", "ssh"));
    line.addAll(pluginArgs);
    line.add("cow-on-read=" + dir.resolve("convert"));
    Process server = new ProcessBuilder(ProcessIT.jnbd(line.toArray(String[]::new)))
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(dir.resolve("server.log").toFile())
        .start();
    try {
      for (int i = 0; i < 1200 && !Files.exists(pidfile); i++) {
        Thread.sleep(50);
      }
      assertThat(pidfile).as("pidfile of a started server: " + Files.readString(dir.resolve("server.log"))).exists();
      Path copy = dir.resolve("copy.raw");
      Tools.run(List.of("nbdcopy", "--requests=64", "--flush", "nbd+unix:///?socket=" + socket, copy.toString()),
          Map.of(), 120).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(image);
    } finally {
      server.destroy();
      server.waitFor(60, TimeUnit.SECONDS);
    }
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
