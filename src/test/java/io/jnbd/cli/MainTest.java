package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.Tools;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command run in-process: informational output, errors, and captive (--run) servers. */
class MainTest {
  @TempDir Path dir;

  record Result(int status, String out, String err) {}

  static Result jnbd(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Result(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void versionNamesTheProgramAndTheNbdkitLevel() {
    Result r = jnbd("--version");
    assertThat(r.status()).isZero();
    assertThat(r.out()).isEqualTo("jnbd " + Help.version() + " (nbdkit " + Compatibility.NBDKIT_LEVEL + " compatible)\n");
  }

  @Test
  void helpListsOptionsPluginsAndFilters() {
    Result r = jnbd("--help");
    assertThat(r.status()).isZero();
    assertThat(r.out()).contains("Usage: jnbd", "--exit-with-parent", "--filter=FILTER", "--run=CMD")
        .contains("testdisk       a RAM disk for command-line tests")
        .contains("shrink         hides the end of the export");
    assertThat(r.out()).doesNotContain(Options.BACKGROUND_CHILD);
  }

  @Test
  void pluginHelpListsTheFiltersAndPluginsParameters() {
    Result r = jnbd("--filter=shrink", "testdisk", "--help");
    assertThat(r.status()).isZero();
    assertThat(r.out()).contains("filter: shrink", "shrink=SIZE  Bytes to hide")
        .contains("plugin: testdisk", "size=SIZE  (required) Size of the disk")
        .contains("A bare VALUE after the plugin name means size=VALUE.");
    assertThat(r.out().indexOf("filter: shrink")).isLessThan(r.out().indexOf("plugin: testdisk"));
  }

  @Test
  void dumpPluginPrintsKeyValueLines() {
    Result r = jnbd("testdisk", "--dump-plugin");
    assertThat(r.status()).isZero();
    assertThat(r.out().lines().toList()).containsExactly("name=testdisk", "version=" + Help.version(),
        "thread_model=parallel", "magic_config_key=size", "testdisk_max_size=64M");
  }

  @Test
  void dumpConfigPrintsTheVersion() {
    Result r = jnbd("--dump-config");
    assertThat(r.status()).isZero();
    assertThat(r.out().lines().toList()).contains("name=jnbd", "version=" + Compatibility.NBDKIT_LEVEL,
        "jnbd_version=" + Help.version(), "tls=yes");
    assertThat(r.out()).containsPattern("(?m)^plugins=(.*,)?testdisk(,|$)").containsPattern("(?m)^filters=(.*,)?shrink(,|$)");
    assertThat(r.out().lines()).allMatch(line -> line.matches("[a-z_]+=.*"));
  }

  @Test
  void everyStartupFailureIsOneLineAndStatusOne() {
    Map<String, String> expected = inOrder(
        "-f nosuch", "jnbd: unknown plugin 'nosuch' (known: ",
        "-f --filter=nope testdisk 1M", "jnbd: unknown filter 'nope' (known: ",
        "-f testdisk", "jnbd: testdisk: the size parameter is required",
        "-f testdisk 1M colour=red", "jnbd: testdisk: unknown parameter 'colour'",
        "-f testdisk 1Q", "jnbd: testdisk: size: unknown size suffix in '1Q'",
        "-f -t lots testdisk 1M", "jnbd: -t: not a number: 'lots'",
        "--bogus testdisk 1M", "jnbd: Unknown option: '--bogus'",
        "-f", "jnbd: no plugin given (try 'jnbd --help')",
        "-f -i no.such.host.invalid testdisk 1M", "jnbd: no.such.host.invalid",
        "--name=input -f nosuch", "jnbd: input: unknown plugin 'nosuch'",
        "-f -D nbdkit.backend.datapath testdisk 1M", "jnbd: -D nbdkit.backend.datapath: a debug flag must have the form NAME.FLAG=N",
        "-f -D datapath=0 testdisk 1M", "jnbd: -D datapath=0: a debug flag must have the form NAME.FLAG=N",
        "-f -D jnbd.layers=on testdisk 1M", "jnbd: -D jnbd.layers=on: 'on' is not a number",
        "-f --vsock -U /tmp/jnbd-unused.sock testdisk 1M", "jnbd: --vsock cannot be combined with -U or -i",
        "-f --mask-handshake=x testdisk 1M", "jnbd: --mask-handshake: not a number",
        "-f -6 -i 127.0.0.1 testdisk 1M", "jnbd: -i 127.0.0.1: no IPv6 address (-6 was given)");
    for (Map.Entry<String, String> e : expected.entrySet()) {
      Result r = jnbd(e.getKey().split(" "));
      assertThat(r.status()).as(e.getKey()).isEqualTo(1);
      assertThat(r.out()).as(e.getKey()).isEmpty();
      assertThat(r.err().lines().toList()).as(e.getKey()).hasSize(1);
      assertThat(r.err()).as(e.getKey()).startsWith(e.getValue());
    }
  }

  /** Arguments and the expected start of stderr, alternating, kept in their order. */
  private static Map<String, String> inOrder(String... argumentsAndMessages) {
    Map<String, String> map = new java.util.LinkedHashMap<>();
    for (int i = 0; i < argumentsAndMessages.length; i += 2) {
      map.put(argumentsAndMessages[i], argumentsAndMessages[i + 1]);
    }
    return map;
  }

  @Test
  void aMissingClientIsNamedWithItsPackage() {
    assertThat(Captive.missingClients("nbdinfo \"$uri\" && qemu-img info \"$uri\" && nbdinfo --size \"$uri\"",
        tool -> tool.equals("qemu-img")))
        .containsExactly("jnbd: --run: nbdinfo is not installed; on Debian or Ubuntu it is in the libnbd-bin package"
            + " (apt-get install libnbd-bin)");
    assertThat(Captive.missingClients("my-script \"$uri\"", tool -> false)).isEmpty();
    Result r = jnbd("testdisk", "1M", "--run", "exit 127");
    assertThat(r.status()).isEqualTo(127);
    assertThat(r.err()).as("nothing to name").isEmpty();
  }

  @Test
  void runPropagatesTheCommandsExitStatus() {
    assertThat(jnbd("testdisk", "1M", "--run", "exit 3").status()).isEqualTo(3);
    assertThat(jnbd("testdisk", "1M", "--run", "true").status()).isZero();
  }

  @Test
  void runServesTheExportWithFiltersAndKeysRouted() throws Exception {
    Tools.require("nbdinfo");
    Path json = dir.resolve("info.json");
    Result r = jnbd("-r", "--filter=shrink", "testdisk", "1M", "shrink=4k",
        "--run", "nbdinfo --json \"$uri\" > " + json);
    assertThat(r.status()).as(r.err()).isZero();
    assertThat(Files.readString(json)).contains("\"export-size\": 1044480", "\"is_read_only\": true");
  }

  @Test
  void runSetsNbdkitsVariablesAndRemovesThePrivateSocket() throws Exception {
    Path env = dir.resolve("env");
    Result r = jnbd("-U", "-", "-e", "disk 1", "testdisk", "1M",
        "--run", "test -S \"$unixsocket\" && env > " + env);
    assertThat(r.status()).as(r.err()).isZero();
    Map<String, String> vars = variables(env);
    String socket = vars.get("unixsocket");
    assertThat(vars).containsEntry("uri", "nbd+unix:///disk%201?socket=" + socket)
        .containsEntry("nbd", vars.get("uri"))
        .containsEntry("exportname", "disk 1")
        .containsEntry("port", "");
    assertThat(Path.of(socket)).doesNotExist();
    assertThat(Path.of(socket).getParent()).doesNotExist();
  }

  @Test
  void runOverTcpGivesTheBoundPort() throws Exception {
    Tools.require("nbdinfo");
    Path env = dir.resolve("env");
    Result r = jnbd("-i", "127.0.0.1", "-p", "0", "testdisk", "64k",
        "--run", "nbdinfo --size \"$uri\" > " + dir.resolve("size") + " && env > " + env);
    assertThat(r.status()).as(r.err()).isZero();
    Map<String, String> vars = variables(env);
    assertThat(vars.get("port")).matches("[1-9][0-9]*");
    assertThat(vars).containsEntry("uri", "nbd://127.0.0.1:" + vars.get("port")).containsEntry("unixsocket", "");
    assertThat(Files.readString(dir.resolve("size")).trim()).isEqualTo("65536");
  }

  /** -4 and -6 listen on one address family only; the other family's loopback finds nobody (or is closed at once). */
  @Test
  void ipv4OnlyAndIpv6OnlyServeOneFamily() throws Exception {
    Tools.require("nbdinfo");
    String both = "nbdinfo --size nbd://127.0.0.1:$port > " + dir.resolve("v4") + "; echo $? >> " + dir.resolve("v4")
        + "; nbdinfo --size nbd://[::1]:$port > " + dir.resolve("v6") + "; echo $? >> " + dir.resolve("v6");
    for (String family : List.of("-4", "-6", "--ipv4-only", "--ipv6-only")) {
      Result r = jnbd(family, "-p", "0", "testdisk", "64k", "--run", both);
      assertThat(r.status()).as(r.err()).isZero();
      boolean v4 = family.contains("4");
      assertThat(Files.readString(dir.resolve("v4")).trim()).as(family + " over IPv4").isEqualTo(v4 ? "65536\n0" : "1");
      assertThat(Files.readString(dir.resolve("v6")).trim()).as(family + " over IPv6").isEqualTo(v4 ? "1" : "65536\n0");
    }
  }

  /** Without SELinux here, --selinux-label is accepted and the socket serves as usual. */
  @Test
  void selinuxLabelIsAcceptedWhereSelinuxIsOff() throws Exception {
    Tools.require("nbdinfo");
    Result r = jnbd("--selinux-label", "system_u:object_r:svirt_socket_t:s0", "-U", "-", "testdisk", "64k",
        "--run", "nbdinfo --size \"$uri\" >/dev/null");
    assertThat(r.status()).as(r.err()).isZero();
  }

  @Test
  void runUnderRequiredTlsGivesAnNbdsUriAndTls2() throws Exception {
    Tools.require("nbdinfo");
    Path pki = io.jnbd.testing.TestPki.certificates(dir.resolve("pki"), "MainTest CA");
    Path env = dir.resolve("env");
    Path info = dir.resolve("info");
    Result r = jnbd("--tls=require", "--tls-certificates=" + pki, "testdisk", "64k",
        "--run", "nbdinfo \"$uri&tls-certificates=" + pki + "\" > " + info + " && env > " + env);
    assertThat(r.status()).as(r.err()).isZero();
    Map<String, String> vars = variables(env);
    assertThat(vars.get("uri")).startsWith("nbds+unix:///?socket=");
    assertThat(vars).containsEntry("tls", "2");
    assertThat(Files.readString(info)).contains("with TLS");
    Result plain = jnbd("--tls=on", "--tls-certificates=" + pki, "testdisk", "64k", "--run", "env > " + env);
    assertThat(plain.status()).as(plain.err()).isZero();
    assertThat(variables(env).get("uri")).as("TLS on but not required").startsWith("nbd+unix:");
    assertThat(variables(env)).containsEntry("tls", "1");
  }

  @Test
  void requiredTlsWithoutCredentialsIsAStartupError() throws Exception {
    Result r = jnbd("--tls=require", "--tls-certificates=" + dir, "testdisk", "64k", "--run", "true");
    assertThat(r.status()).isEqualTo(1);
    assertThat(r.err()).startsWith("jnbd: --tls=require but could not load TLS certificates").hasLineCount(1);
    Path badPsk = Files.writeString(dir.resolve("bad.psk"), "alice:not-hex\n");
    r = jnbd("--tls-psk=" + badPsk, "testdisk", "64k", "--run", "true");
    assertThat(r.status()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("jnbd: --tls-psk: " + badPsk + " line 1: the key is not an even number of hex digits\n");
  }

  @Test
  void pidfileIsWrittenBeforeClientsComeAndRemovedAfter() throws Exception {
    Path pidfile = dir.resolve("jnbd.pid");
    Path socket = dir.resolve("nbd.sock");
    Path seen = dir.resolve("seen");
    Result r = jnbd("--exit-with-parent", "--foreground", "--pidfile", pidfile.toString(), "--unix",
        socket.toString(), "--threads", "16", "-D", "nbdkit.backend.datapath=0", "--readonly",
        "--filter", "shrink", "testdisk", "size=1M",
        "--run", "test -S " + socket + " && cat " + pidfile + " > " + seen);
    assertThat(r.status()).as(r.err()).isZero();
    assertThat(Files.readString(seen)).isEqualTo(ProcessHandle.current().pid() + "\n");
    assertThat(pidfile).doesNotExist();
    assertThat(socket).doesNotExist();
  }

  private static Map<String, String> variables(Path envFile) throws Exception {
    Map<String, String> vars = new HashMap<>();
    for (String line : Files.readAllLines(envFile)) {
      int eq = line.indexOf('=');
      if (eq > 0) {
        vars.put(line.substring(0, eq), line.substring(eq + 1));
      }
    }
    List<String> wanted = Arrays.asList("uri", "nbd", "unixsocket", "port", "exportname");
    assertThat(vars.keySet()).containsAll(wanted);
    return vars;
  }
}
