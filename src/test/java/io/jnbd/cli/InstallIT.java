package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Configurable;
import io.jnbd.server.Catalog;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The release tarball (built before the integration tests, property jnbd.dist) installed as a user
 * would, by unpacking it into an empty directory and linking its launcher and shim from a bin
 * directory, then run from there with no JDK in sight: JAVA_HOME points nowhere, and the java on
 * PATH (if any) is not the runtime that must run.
 */
@Tag("slow")
class InstallIT {
  @TempDir static Path root;
  static Path home;
  static Path links;
  /** The environment of every command: no JAVA_HOME to find, the links first on PATH. */
  static Map<String, String> env;

  @BeforeAll
  static void install() throws Exception {
    String tarball = System.getProperty("jnbd.dist");
    assertThat(tarball).as("the release tarball (run under mvn verify)").isNotNull()
        .satisfies(t -> assertThat(Path.of(t)).exists());
    Path prefix = Files.createDirectories(root.resolve("opt"));
    Tools.run("tar", "-xzf", tarball, "-C", prefix.toString()).assertSuccess();
    try (Stream<Path> unpacked = Files.list(prefix)) {
      home = unpacked.collect(java.util.stream.Collectors.toList()).getFirst();
    }
    links = Files.createDirectories(root.resolve("bin"));
    Files.createSymbolicLink(links.resolve("jnbd"), home.resolve("bin/jnbd"));
    Files.createSymbolicLink(links.resolve("nbdkit"), home.resolve("nbdkit-shim/nbdkit"));
    env = Map.of("JAVA_HOME", root.resolve("no-jdk-here").toString(),
        "PATH", links + ":/usr/bin:/bin", "JAVA_OPTS", "", "CLASSPATH", "");
  }

  private static Tools.Result sh(String script) {
    return Tools.run(List.of("/bin/sh", "-c", script), env, 120);
  }

  @Test
  void versionRunsFromTheLinkedLauncher() {
    Tools.Result r = sh("jnbd --version").assertSuccess();
    assertThat(r.stdout()).matches("jnbd \\S+ \\(nbdkit \\d+\\.\\d+\\.\\d+ compatible\\)\\n");
    assertThat(r.stderr()).isEmpty();
  }

  @Test
  void theShimFirstOnPathAnswersAsNbdkit() {
    Tools.Result r = sh("command -v nbdkit && nbdkit --version && nbdkit --dump-config").assertSuccess();
    assertThat(r.stdout().lines().toList().getFirst()).isEqualTo(links.resolve("nbdkit").toString());
    // virt-v2v reads version= as MAJOR.MINOR.MICRO and gives up without it.
    assertThat(r.stdout()).containsPattern("(?m)^version=\\d+\\.\\d+\\.\\d+");
    assertThat(r.stderr()).isEmpty();
  }

  /**
   * A round trip through the installed server: nbdcopy writes a file into the memory plugin and
   * reads it back; the server is the bundled runtime's java, and it mapped the bundled AOT cache
   * for local servers (the JVM unmaps a cache it rejects, so a cache that does not fit its runtime
   * fails this).
   */
  @Test
  void nbdcopyRoundTripThroughTheInstalledServerOnItsRuntimeAndCache() throws Exception {
    Tools.require("nbdcopy");
    byte[] data = new byte[8 << 20];
    new Random(10).nextBytes(data);
    Path in = Files.write(root.resolve("in.img"), data);
    Path out = root.resolve("out.img");
    Path exe = root.resolve("server-exe");
    Path maps = root.resolve("server-maps");
    sh("jnbd -U - memory 8M --run 'nbdcopy " + in + " \"$uri\" && nbdcopy \"$uri\" " + out
        + " && readlink /proc/$PPID/exe > " + exe + " && cat /proc/$PPID/maps > " + maps + "'").assertSuccess();
    assertThat(Files.mismatch(in, out)).isEqualTo(-1);
    assertThat(Path.of(Files.readString(exe).strip())).isEqualTo(home.resolve("lib/runtime/bin/java").toRealPath());
    assertThat(Files.readString(maps)).contains(home.resolve("lib/jnbd-local.aot").toRealPath().toString())
        .doesNotContain(home.resolve("lib/jnbd.aot").toRealPath().toString());
  }

  /** A server that speaks TLS maps the whole cache, whose training covers more than local servers. */
  @Test
  void aServerThatSpeaksTlsMapsTheWholeCache() throws Exception {
    Path keys = Files.writeString(root.resolve("keys.psk"), "alice:0123456789abcdef0123456789abcdef\n");
    Path maps = root.resolve("tls-server-maps");
    sh("jnbd -U - --tls=on --tls-psk=" + keys + " memory 8M --run 'cat /proc/$PPID/maps > " + maps + "'")
        .assertSuccess();
    assertThat(Files.readString(maps)).contains(home.resolve("lib/jnbd.aot").toRealPath().toString())
        .doesNotContain(home.resolve("lib/jnbd-local.aot").toRealPath().toString());
  }

  @Test
  void everyPluginAndFilterHasAManPageWithItsHelpText() throws Exception {
    Path man = home.resolve("share/man/man1");
    assertThat(Files.readString(man.resolve("jnbd.1"))).contains(".SH SYNOPSIS", "\\-\\-filter");
    List<Configurable> builtIn = Stream.concat(Catalog.plugins().stream(), Catalog.filters().stream())
        .filter(layer -> !layer.getClass().getPackageName().equals("io.jnbd.cli")) // the tests' own
        .map(Configurable.class::cast).toList();
    assertThat(builtIn).hasSizeGreaterThan(30);
    for (Configurable layer : builtIn) {
      String kind = layer instanceof io.jnbd.api.Plugin ? "plugin" : "filter";
      String page = Files.readString(man.resolve("jnbd-" + layer.name() + "-" + kind + ".1"));
      for (var parameter : layer.parameters()) {
        assertThat(page).as(layer.name()).contains(parameter.key().replace("-", "\\-") + "=");
      }
    }
    assertThat(home.resolve("share/doc/jnbd/docs/install.md")).exists();
  }
}
