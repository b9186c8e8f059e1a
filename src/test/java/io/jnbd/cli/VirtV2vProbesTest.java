package io.jnbd.cli;

import static io.jnbd.cli.MainTest.jnbd;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Configurable;
import io.jnbd.cli.MainTest.Result;
import io.jnbd.server.Catalog;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every probe virt-v2v runs against nbdkit (../shared/notes/virt-v2v.md), replayed against jnbd:
 * each must answer by its exit status exactly as what the catalog holds says, because virt-v2v
 * puts on its command lines whatever a probe said was there. And the compatibility level that
 * --dump-config reports must not claim a release whose gates do not work.
 */
class VirtV2vProbesTest {
  @TempDir Path dir;

  private static final List<String> PROBED_PLUGINS = List.of("file", "curl", "ssh", "null", "nbd", "vddk");
  private static final List<String> PROBED_FILTERS =
      List.of("cow", "retry", "cacheextents", "rate", "blocksize", "multi-conn", "count");

  private static boolean registered(List<? extends Configurable> layers, String name) {
    return layers.stream().anyMatch(layer -> layer.name().equals(name));
  }

  @Test
  void installedProbesSucceed() {
    assertThat(jnbd("--version").status()).isZero();
    assertThat(jnbd("--dump-config").status()).isZero();
  }

  @Test
  void pluginVersionProbesSayWhetherThePluginExists() {
    for (String plugin : PROBED_PLUGINS) {
      Result r = jnbd(plugin, "--version");
      if (registered(Catalog.plugins(), plugin)) {
        assertThat(r.status()).as(plugin + " --version: " + r.err()).isZero();
        assertThat(r.out()).as(plugin).contains("\n" + plugin + " " + Help.version() + "\n");
      } else {
        assertThat(r.status()).as(plugin + " --version").isEqualTo(1);
        assertThat(r.err()).as(plugin).startsWith("jnbd: unknown plugin '" + plugin + "'");
      }
    }
    assertThat(jnbd("vddk", "--version").status()).as("VMware's VDDK is not something jnbd has").isNotZero();
  }

  @Test
  void filterVersionProbesSayWhetherTheFilterExists() {
    for (String filter : PROBED_FILTERS) {
      Result r = jnbd("null", "--filter=" + filter, "--version");
      if (registered(Catalog.filters(), filter)) {
        assertThat(r.status()).as(filter + " --version: " + r.err()).isZero();
        assertThat(r.out().lines()).as(filter).contains(filter + " " + Help.version(), "null " + Help.version());
      } else {
        assertThat(r.status()).as(filter + " --version").isEqualTo(1);
        assertThat(r.err()).as(filter).startsWith("jnbd: unknown filter '" + filter + "'");
      }
    }
    assertThat(jnbd("null", "--filter=cow", "--version").status()).as("every virt-v2v input needs cow").isZero();
  }

  @Test
  void everyProbeOfSomethingAbsentFails() {
    for (String probe : List.of("--version", "--help", "--dump-plugin")) {
      assertThat(jnbd("no-such-plugin", probe).status()).as("plugin " + probe).isEqualTo(1);
      assertThat(jnbd("null", "--filter=no-such-filter", probe).status()).as("filter " + probe).isEqualTo(1);
      assertThat(jnbd("--filter=no-such-filter", "null", probe).status()).as("filter first " + probe).isEqualTo(1);
    }
  }

  @Test
  void cowHelpAnswersTheParameterProbes() {
    Result r = jnbd("null", "--filter=cow", "--help");
    assertThat(r.status()).isZero();
    assertThat(r.out()).containsPattern("(?m)cow-on-read=.*/PATH").containsPattern("(?m)cow-block-size");
  }

  @Test
  void longAndShortOptionsListOneOptionALineIncludingName() {
    Result longOptions = jnbd("--long-options");
    assertThat(longOptions.status()).isZero();
    assertThat(longOptions.out().lines()).allMatch(line -> line.matches("--[a-z0-9-]+"))
        .contains("--name", "--exit-with-parent", "--foreground", "--pidfile", "--unix", "--threads",
            "--selinux-label", "--debug", "--readonly", "--verbose", "--filter", "--run", "--no-sr", "--no-meta-contexts")
        .doesNotContain(Options.BACKGROUND_CHILD)
        .doesNotHaveDuplicates();
    Result shortOptions = jnbd("--short-options");
    assertThat(shortOptions.status()).isZero();
    assertThat(shortOptions.out().lines()).allMatch(line -> line.matches("-[A-Za-z0-9]"))
        .contains("-D", "-U", "-P", "-f", "-r", "-t", "-v", "-V", "-4", "-6");
  }

  @Test
  void dumpConfigVersionIsTheLevelVirtV2vParses() {
    Map<String, String> config = dumpConfig();
    Matcher version = Pattern.compile("^(\\d+)\\.(\\d+)\\.(\\d+)").matcher(config.get("version"));
    assertThat(version.find()).as(config.get("version")).isTrue();
    assertThat(config).containsEntry("version", Compatibility.NBDKIT_LEVEL)
        .containsEntry("version_major", version.group(1))
        .containsEntry("version_minor", version.group(2))
        .containsEntry("jnbd_version", Help.version())
        .containsKey("selinux");
  }

  /**
   * The rule for the level (docs/cli.md): every gate up to it must work. A gate that virt-v2v
   * also guards with a probe for its plugin is met by that plugin being absent (the probe fails
   * and virt-v2v refuses the mode) or working; the others must work.
   */
  @Test
  void theLevelClaimsOnlyGatesThatWork() throws Exception {
    String level = Compatibility.NBDKIT_LEVEL;
    if (atLeast(level, "1.12.0") && registered(Catalog.plugins(), "ssh")) {
      assertThat(jnbd("ssh", "--help").out()).as("ssh takes virt-v2v's keys")
          .contains("host=", "path=", "port=", "user=", "password=");
    }
    if (atLeast(level, "1.17.4")) {
      assertThat(jnbd("-D", "nbdkit.backend.datapath=0", "null", "1M", "--run", "true").status()).isZero();
    }
    if (atLeast(level, "1.22.0")) {
      Path disk = Files.write(dir.resolve("disk"), new byte[4096]);
      assertThat(jnbd("file", "file=" + disk, "cache=none", "--run", "true").status()).as("file cache=none").isZero();
      assertThat(jnbd("curl", "--help").out()).as("curl cookie-script").contains("cookie-script=", "cookie-script-renew=");
    }
    if (atLeast(level, "1.44.0")) {
      assertThat(jnbd("file", "--help").out()).as("file dir=").contains("dir=");
      assertThat(jnbd("file", "--help").out()).as("file's parameter probe")
          .containsPattern("reduce-memory-pressure=|cache=");
    }
  }

  private static boolean atLeast(String level, String gate) {
    int[] a = Arrays.stream(level.split("\\.")).mapToInt(Integer::parseInt).toArray();
    int[] b = Arrays.stream(gate.split("\\.")).mapToInt(Integer::parseInt).toArray();
    return Arrays.compare(a, b) >= 0;
  }

  private static Map<String, String> dumpConfig() {
    return jnbd("--dump-config").out().lines()
        .collect(Collectors.toMap(line -> line.substring(0, line.indexOf('=')), line -> line.substring(line.indexOf('=') + 1)));
  }
}
