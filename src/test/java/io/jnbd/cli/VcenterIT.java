package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.SelfSignedTls;
import io.jnbd.testing.Tools;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * virt-v2v 2.2.0's vCenter input replayed through the packaged jar: an HTTPS origin that acts as
 * vCenter's /folder endpoint (401 without a session cookie; a HEAD with the right Basic
 * credentials gets a vmware_soap_session cookie), the cookie script virt-v2v writes (curl --head
 * with -u, printing the Set-Cookie value), virt-v2v's server line word for word, and its
 * nbdcopy.
 */
@Tag("slow")
class VcenterIT {
  private static final String USER = "administrator@vsphere.local";
  private static final String PASSWORD = "v2v-pass";
  private static final String PATH = "/folder/guest/guest-flat.vmdk";

  @TempDir Path dir;

  /** vCenter's sessions: Basic credentials open one, its cookie admits requests until expired. */
  private static final class Sessions {
    private final Set<String> valid = ConcurrentHashMap.newKeySet();
    private final String basic = "Basic " + Base64.getEncoder().encodeToString((USER + ":" + PASSWORD).getBytes(StandardCharsets.UTF_8));
    final AtomicInteger opened = new AtomicInteger();
    final AtomicInteger admittedByCookie = new AtomicInteger();
    /** After this many requests admitted by cookie, every session expires once; 0: never. */
    volatile int expireAfter;

    void install(RangeOrigin origin) {
      origin.authorized = headers -> {
        if (basic.equals(headers.getFirst("Authorization"))) {
          return true;
        }
        String cookie = headers.getFirst("Cookie");
        boolean admitted = cookie != null && valid.stream().anyMatch(id -> cookie.contains("vmware_soap_session=\"" + id + "\""));
        if (admitted && admittedByCookie.incrementAndGet() == expireAfter) {
          valid.clear();
        }
        return admitted;
      };
      origin.cookieToSet = headers -> {
        if (!basic.equals(headers.getFirst("Authorization"))) {
          return null;
        }
        String id = UUID.randomUUID().toString();
        valid.add(id);
        opened.incrementAndGet();
        return "vmware_soap_session=\"" + id + "\"; Path=/; HttpOnly; Secure";
      };
    }
  }

  @Test
  void theVcenterLineCopiesIdentically() throws Exception {
    Sessions sessions = new Sessions();
    byte[] image = copyThroughVcenterLine(sessions, 9);
    assertThat(sessions.opened.get()).as("sessions opened by the cookie script").isEqualTo(1);
    assertThat(sessions.admittedByCookie.get()).as("requests admitted by the session cookie").isGreaterThan(image.length >> 20);
  }

  @Test
  void aSessionThatExpiresMidCopyIsRenewedByTheScript() throws Exception {
    Sessions sessions = new Sessions();
    sessions.expireAfter = 6;
    copyThroughVcenterLine(sessions, 10);
    assertThat(sessions.opened.get()).as("sessions opened: at start, and after the expiry").isGreaterThanOrEqualTo(2);
    assertThat(sessions.admittedByCookie.get()).isGreaterThan(sessions.expireAfter);
  }

  /** Serves a random 16 MiB image as vCenter would and copies it as virt-v2v does; returns the image. */
  private byte[] copyThroughVcenterLine(Sessions sessions, long seed) throws Exception {
    Tools.require("nbdcopy", "curl");
    byte[] image = new byte[16 << 20];
    new Random(seed).nextBytes(image);
    SelfSignedTls tls = new SelfSignedTls(dir);
    try (RangeOrigin origin = RangeOrigin.https(image, tls.serverContext()).alsoAt("/folder")) {
      sessions.install(origin);
      String url = origin.url(PATH) + "?dcPath=Datacenter&dsName=datastore1";
      Path script = cookieScript(url);
      Path socket = dir.resolve("in.sock");
      Path pidfile = dir.resolve("in.pid");
      Process server = startForeground(pidfile, dir.resolve("server.log"),
          "--exit-with-parent", "--foreground", "--pidfile", pidfile.toString(), "--unix", socket.toString(),
          "--threads", "16", "-D", "nbdkit.backend.datapath=0",
          "--filter", "cow", "--filter", "cacheextents", "--filter", "retry",
          "curl", "url=" + url, "timeout=2000", "cookie-script=" + script, "cookie-script-renew=1500",
          "sslverify=false", "cow-on-read=" + dir.resolve("convert"));
      try {
        Path copy = dir.resolve("copy.raw");
        Tools.run(List.of("nbdcopy", "nbd+unix:///?socket=" + socket, copy.toString(), "--requests=64", "--flush"),
            Map.of("LANG", "C"), 120).assertSuccess();
        assertThat(Files.readAllBytes(copy)).as("the copy, byte for byte").isEqualTo(image);
      } finally {
        server.destroy();
        assertThat(server.waitFor(60, TimeUnit.SECONDS)).as("server stopped by SIGTERM").isTrue();
      }
      assertThat(origin.queries).as("the script's HEAD and every read kept the query")
          .allMatch("dcPath=Datacenter&dsName=datastore1"::equals);
    }
    return image;
  }

  /** The script virt-v2v 2.2.0 writes for cookie-script=. */
  private Path cookieScript(String url) throws Exception {
    Path script = dir.resolve("get-cookie.sh");
    Files.writeString(script, "#!/bin/sh -\n\n"
        + "curl --head -s --insecure -u '" + USER + ":" + PASSWORD + "' '" + url + "' |\n"
        + "\tsed -ne '{ s/^Set-Cookie: \\([^;]*\\);.*/\\1/ip }'\n");
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"));
    return script;
  }

  /** Starts jnbd in the foreground, as virt-v2v does, and returns once its pidfile exists. */
  private static Process startForeground(Path pidfile, Path log, String... line) throws Exception {
    List<String> command = new ArrayList<>(ProcessIT.jnbd(line));
    ProcessBuilder builder = new ProcessBuilder(command)
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(log.toFile());
    builder.environment().put("LANG", "C");
    Process server = builder.start();
    // virt-v2v polls once a second for 30 s; polling faster only makes the test quicker.
    for (int i = 0; i < 600 && !Files.exists(pidfile) && server.isAlive(); i++) {
      Thread.sleep(50);
    }
    assertThat(pidfile).as("pidfile of a started server; its log:\n" + Files.readString(log)).exists();
    return server;
  }
}
