package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.OriginGate;
import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.Tools;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command as its own JVM (the shaded jar plus the test plugin): background start, exit with
 * the parent, serving stdin/stdout. Failsafe passes the jar's path as the property jnbd.jar.
 */
@Tag("slow")
class ProcessIT {
  @TempDir Path dir;

  /** The java command line that runs jnbd from the packaged jar, with the test plugin. */
  static List<String> jnbd(String... args) throws Exception {
    String jar = System.getProperty("jnbd.jar");
    assertThat(jar).as("the packaged jar (run under mvn verify)").isNotNull().satisfies(j -> assertThat(Path.of(j)).exists());
    Path testClasses = Path.of(TestDisk.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", jar + File.pathSeparator + testClasses, Main.class.getName()));
    command.addAll(List.of(args));
    return command;
  }

  /**
   * Starts jnbd with virt-v2v's server prefix ({@code --exit-with-parent --foreground --pidfile P
   * --unix S --threads 16 -D nbdkit.backend.datapath=0}) before {@code line}, waits for the pidfile
   * as virt-v2v does, copies the export with nbdcopy as virt-v2v does ({@code --requests=64
   * --flush}), checks the copy is {@code expected}, and stops the server.
   */
  static void copyThroughVirtV2vServer(Path dir, List<String> line, byte[] expected) throws Exception {
    Path socket = dir.resolve("in.sock");
    Path pidfile = dir.resolve("in.pid");
    List<String> command = new ArrayList<>(List.of("--exit-with-parent", "--foreground", "--pidfile", pidfile.toString(),
        "--unix", socket.toString(), "--threads", "16", "-D", "nbdkit.backend.datapath=0"));
    command.addAll(line);
    Process server = new ProcessBuilder(jnbd(command.toArray(String[]::new)))
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(dir.resolve("server.log").toFile())
        .start();
    try {
      for (int i = 0; i < 1200 && !Files.exists(pidfile) && server.isAlive(); i++) {
        Thread.sleep(50);
      }
      assertThat(pidfile).as("pidfile of a started server: " + Files.readString(dir.resolve("server.log"))).exists();
      Path copy = dir.resolve("copy.raw");
      Tools.run(List.of("nbdcopy", "--requests=64", "--flush", "nbd+unix:///?socket=" + socket, copy.toString()),
          Map.of(), 120).assertSuccess();
      assertThat(Files.readAllBytes(copy)).isEqualTo(expected);
    } finally {
      server.destroy();
      assertThat(server.waitFor(60, TimeUnit.SECONDS)).as("the server stops on SIGTERM").isTrue();
    }
  }

  @Test
  void backgroundStartReturnsOnceServingAndStopsOnSigterm() throws Exception {
    Tools.require("nbdinfo");
    Path socket = dir.resolve("nbd.sock");
    Path pidfile = dir.resolve("jnbd.pid");
    Tools.Result start = Tools.run(jnbd("-U", socket.toString(), "-P", pidfile.toString(), "testdisk", "1M"),
        Map.of(), 120);
    assertThat(start.exitCode()).as(start.stderr()).isZero();
    assertThat(start.stdout()).isEmpty();
    long pid = Long.parseLong(Files.readString(pidfile).trim());
    ProcessHandle server = ProcessHandle.of(pid).orElseThrow();
    try {
      assertThat(pid).isNotEqualTo(ProcessHandle.current().pid());
      assertThat(Tools.run("nbdinfo", "--size", "nbd+unix:///?socket=" + socket).assertSuccess().stdout().trim())
          .isEqualTo("1048576");
    } finally {
      server.destroy(); // SIGTERM
    }
    server.onExit().get(60, TimeUnit.SECONDS);
    assertThat(pidfile).doesNotExist();
    assertThat(socket).doesNotExist();
  }

  @Test
  void backgroundStartReadsAPasswordFromStdinBeforeDetaching() throws Exception {
    Tools.require("nbdinfo");
    byte[] image = new byte[1 << 20];
    String expected = "Basic " + Base64.getEncoder().encodeToString("carol:typed-pw".getBytes(StandardCharsets.UTF_8));
    try (RangeOrigin origin = RangeOrigin.http(image)) {
      origin.authorized = headers -> expected.equals(headers.getFirst("Authorization"));
      Path socket = dir.resolve("nbd.sock");
      Path pidfile = dir.resolve("jnbd.pid");
      Process start = new ProcessBuilder(jnbd("-U", socket.toString(), "-P", pidfile.toString(),
          "http", "url=" + origin.url(), "user=carol", "password=-"))
          .redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .start();
      try (var stdin = start.getOutputStream()) {
        stdin.write("typed-pw\n".getBytes(StandardCharsets.UTF_8));
      }
      String errors = new String(start.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(start.waitFor()).as(errors).isZero();
      ProcessHandle server = ProcessHandle.of(Long.parseLong(Files.readString(pidfile).trim())).orElseThrow();
      try {
        Tools.run("nbdinfo", "--map", "nbd+unix:///?socket=" + socket).assertSuccess();
        Tools.nbdsh("nbd+unix:///?socket=" + socket, "h.pread(4096, 0)");
        assertThat(origin.rangedGets.get()).isPositive();
        assertThat(origin.unauthorized.get()).isZero();
      } finally {
        server.destroy();
        server.onExit().get(60, TimeUnit.SECONDS);
      }
    }
  }

  /**
   * password=-FD, as virt-v2v passes it: the secret comes from a descriptor the server inherits,
   * here a pipe, both in the foreground and when a background start hands it to its child JVM
   * (which inherits only 0, 1 and 2).
   */
  @Test
  void aPasswordFromAnInheritedDescriptorReachesTheOrigin() throws Exception {
    Tools.require("nbdinfo");
    String expected = "Basic " + Base64.getEncoder().encodeToString("carol:piped-pw".getBytes(StandardCharsets.UTF_8));
    try (RangeOrigin origin = RangeOrigin.http(new byte[1 << 20])) {
      origin.authorized = headers -> expected.equals(headers.getFirst("Authorization"));
      Path socket = dir.resolve("nbd.sock");
      Path pidfile = dir.resolve("jnbd.pid");
      // The shell moves the pipe from its stdin to descriptor 3 before it runs the server.
      String foreground = "printf 'piped-pw\\n' | { exec 3<&0 </dev/null; exec "
          + String.join(" ", jnbd("http", "url=" + origin.url(), "user=carol", "password=-3",
              "--run", "nbdinfo --size \"$uri\"").stream().map(ProcessIT::shellQuote).toList()) + "; }";
      Tools.Result served = Tools.run(List.of("sh", "-c", foreground), Map.of(), 120);
      assertThat(served.exitCode()).as(served.stderr()).isZero();
      assertThat(served.stdout().trim()).isEqualTo("1048576");
      String background = "printf 'piped-pw\\n' | { exec 3<&0 </dev/null; exec "
          + String.join(" ", jnbd("-U", socket.toString(), "-P", pidfile.toString(),
              "http", "url=" + origin.url(), "user=carol", "password=-3").stream().map(ProcessIT::shellQuote).toList()) + "; }";
      Tools.Result start = Tools.run(List.of("sh", "-c", background), Map.of(), 120);
      assertThat(start.exitCode()).as(start.stderr()).isZero();
      ProcessHandle server = ProcessHandle.of(Long.parseLong(Files.readString(pidfile).trim())).orElseThrow();
      try {
        Tools.nbdsh("nbd+unix:///?socket=" + socket, "h.pread(4096, 0)").assertSuccess();
      } finally {
        server.destroy();
        server.onExit().get(60, TimeUnit.SECONDS);
      }
      assertThat(origin.unauthorized.get()).isZero();
      assertThat(origin.rangedGets.get()).isPositive();
    }
  }

  /**
   * Socket activation: systemd-socket-activate listens, runs jnbd on the first connection with
   * the socket as descriptor 3 and LISTEN_PID/LISTEN_FDS set, and jnbd serves on it without
   * detaching; with an option that names another socket it refuses to start, as nbdkit does.
   */
  @Test
  void socketActivationServesOnThePassedSocketAndRefusesAnotherOne() throws Exception {
    Tools.require("systemd-socket-activate", "nbdinfo");
    Path socket = dir.resolve("activated.sock");
    Path pidfile = dir.resolve("jnbd.pid");
    List<String> command = new ArrayList<>(List.of("systemd-socket-activate", "-l", socket.toString(), "--"));
    command.addAll(jnbd("-P", pidfile.toString(), "testdisk", "1M"));
    Process activator = new ProcessBuilder(command).redirectErrorStream(true).start();
    try {
      awaitFile(socket);
      assertThat(Tools.run("nbdinfo", "--size", "nbd+unix:///?socket=" + socket).assertSuccess().stdout().trim())
          .isEqualTo("1048576");
      awaitFile(pidfile);
      assertThat(Long.parseLong(Files.readString(pidfile).trim())).as("jnbd stayed the activated process")
          .isEqualTo(activator.pid());
      activator.destroy(); // SIGTERM, to jnbd itself
      assertThat(activator.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(activator.exitValue()).isZero();
    } finally {
      activator.destroyForcibly();
    }

    Path refused = dir.resolve("refused.sock");
    command = new ArrayList<>(List.of("systemd-socket-activate", "-l", refused.toString(), "--"));
    command.addAll(jnbd("-p", "0", "testdisk", "1M"));
    activator = new ProcessBuilder(command).redirectErrorStream(true).start();
    try {
      awaitFile(refused);
      assertThat(Tools.run("nbdinfo", "--size", "nbd+unix:///?socket=" + refused).exitCode()).isNotZero();
      assertThat(activator.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(activator.exitValue()).isEqualTo(1);
      assertThat(new String(activator.getInputStream().readAllBytes(), StandardCharsets.UTF_8))
          .contains("jnbd: cannot use socket activation with -p");
    } finally {
      activator.destroyForcibly();
    }
  }

  private static void awaitFile(Path file) throws InterruptedException {
    for (int i = 0; i < 1200 && !Files.exists(file); i++) {
      Thread.sleep(50);
    }
    assertThat(file).exists();
  }

  /**
   * The README's first command: with nbdinfo installed it shows the disk; on a machine without
   * it (here: a PATH that leads nowhere) it ends with the shell's status 127 and says which
   * package to install.
   */
  @Test
  void readmesFirstCommandWorksOrNamesThePackageToInstall() throws Exception {
    Tools.require("nbdinfo");
    List<String> readme = jnbd("--run", "nbdinfo \"$uri\"", "memory", "1G");
    Tools.Result shown = Tools.run(readme, Map.of(), 120);
    assertThat(shown.exitCode()).as(shown.stderr()).isZero();
    assertThat(shown.stdout()).contains("export-size: 1073741824");
    Path emptyPath = Files.createDirectory(dir.resolve("bin"));
    Tools.Result missing = Tools.run(readme, Map.of("PATH", emptyPath.toString()), 120);
    assertThat(missing.exitCode()).isEqualTo(127);
    assertThat(missing.stderr()).contains(
        "jnbd: --run: nbdinfo is not installed; on Debian or Ubuntu it is in the libnbd-bin package (apt-get install libnbd-bin)");
  }

  /**
   * SIGTERM is a clean stop: writes acknowledged by a writeback cache (never flushed by the
   * client) reach the file, the socket and pidfile go, and the exit status is 0, as nbdkit's.
   */
  @Test
  void sigtermWritesBackTheCacheRemovesItsFilesAndExitsZero() throws Exception {
    Tools.require("nbdsh");
    Path image = dir.resolve("disk.img");
    Files.write(image, new byte[4 << 20]);
    Path socket = dir.resolve("nbd.sock");
    Path pidfile = dir.resolve("jnbd.pid");
    Process server = new ProcessBuilder(jnbd("-f", "-U", socket.toString(), "-P", pidfile.toString(),
        "--filter=cache", "file", image.toString(), "cache=writeback"))
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(ProcessBuilder.Redirect.DISCARD)
        .start();
    try {
      for (int i = 0; i < 1200 && !Files.exists(pidfile); i++) {
        Thread.sleep(50);
      }
      assertThat(pidfile).as("pidfile of a started server").exists();
      Tools.nbdsh("nbd+unix:///?socket=" + socket,
          "h.pwrite(b'jnbd' * 16384, 65536); h.pwrite(b'x' * 100, 1000000)").assertSuccess();
      server.destroy(); // SIGTERM
      assertThat(server.waitFor(60, TimeUnit.SECONDS)).as("stopped within 60 s").isTrue();
      assertThat(server.exitValue()).isZero();
    } finally {
      server.destroyForcibly();
    }
    byte[] written = Files.readAllBytes(image);
    assertThat(new String(written, 65536, 65536, StandardCharsets.US_ASCII)).isEqualTo("jnbd".repeat(16384));
    assertThat(new String(written, 1000000, 100, StandardCharsets.US_ASCII)).isEqualTo("x".repeat(100));
    assertThat(socket).doesNotExist();
    assertThat(pidfile).doesNotExist();
  }

  /** virt-v2v runs with -v and -D nbdkit.backend.datapath=0: no line per request; -D jnbd.layers=1 adds one per call. */
  @Test
  void debugFlagsChooseWhatVerboseTraces() throws Exception {
    Tools.require("nbdinfo");
    String read = "nbdinfo --map \"$uri\" >/dev/null";
    String everyRequest = Tools.run(jnbd("-v", "--run", read, "memory", "1M"), Map.of(), 120).assertSuccess().stderr();
    assertThat(everyRequest).contains(" ok in ").doesNotContain("server -> memory");
    String quiet = Tools.run(jnbd("-v", "-D", "nbdkit.backend.datapath=0", "--run", read, "memory", "1M"), Map.of(), 120)
        .assertSuccess().stderr();
    assertThat(quiet).doesNotContain(" ok in ");
    String layers = Tools.run(jnbd("-v", "-D", "jnbd.layers=1", "-D", "nbdkit.backend.datapath=0", "--run", read,
        "--filter=stats", "memory", "1M"), Map.of(), 120).assertSuccess().stderr();
    assertThat(layers).contains("server -> stats: extents").contains("stats -> memory: extents").doesNotContain(" ok in ");
  }

  /** The count filter's totals reach the log with -v at exit, after a real client's requests. */
  @Test
  void countFilterLogsTheTotalsWithVerbose() throws Exception {
    Tools.require("nbdsh");
    String script = "nbdsh -u \"$uri\" -c 'h.pwrite(b\"x\" * 4096, 0); h.pread(8192, 0); h.zero(4096, 8192); h.trim(4096, 0)'";
    String verbose = Tools.run(jnbd("-v", "-D", "nbdkit.backend.datapath=0", "--filter=count", "--run", script,
        "memory", "1M"), Map.of(), 120).assertSuccess().stderr();
    assertThat(verbose).contains("count bytes: read 8192, written 4096, zeroed 4096, trimmed 4096");
    String quiet = Tools.run(jnbd("--filter=count", "--run", script, "memory", "1M"), Map.of(), 120)
        .assertSuccess().stderr();
    assertThat(quiet).doesNotContain("count bytes:");
  }

  /**
   * virt-v2v's server line for a remote input, word for word, then its copy: nbdcopy with 64
   * requests in flight and a flush, byte-identical; then again while the origin refuses
   * connections for 2 s, which the http plugin and the retry filter ride out.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("virtV2vFilterLines")
  void virtV2vsCommandLinesCopyAnHttpImageIdentically(String which, List<String> filtersAndPlugin) throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[8 << 20];
    new Random(8).nextBytes(image);
    try (RangeOrigin origin = RangeOrigin.http(image)) {
      List<String> line = new ArrayList<>(List.of("--readonly"));
      line.addAll(filtersAndPlugin);
      line.add("url=" + origin.url());
      line.add("cow-on-read=" + dir.resolve("convert"));
      copyThroughVirtV2vServer(dir, line, image);
    }
  }

  /**
   * virt-v2v 2.2.0's vCenter line (cow outermost, retry next to the plugin), upstream's (with the
   * options it adds when the probes say they are there) and upstream's vddk filters over http.
   */
  static Stream<Arguments> virtV2vFilterLines() {
    return Stream.of(
        Arguments.of("2.2.0 vCenter", List.of("--filter", "cow", "--filter", "cacheextents", "--filter", "retry",
            "curl", "timeout=2000")),
        Arguments.of("upstream vCenter", List.of("--name", "input", "--selinux-label", "system_u:object_r:svirt_socket_t:s0",
            "--verbose", "--filter", "cow", "--filter", "count", "--filter", "retry", "curl", "timeout=2000")),
        Arguments.of("upstream vddk filters", List.of("--filter", "multi-conn", "--filter", "cow", "--filter", "blocksize",
            "--filter", "retry", "http", "minblock=512", "maxdata=2M", "multi-conn-mode=disable", "cow-block-size=4096")));
  }

  @Test
  void virtV2vsCommandLineCopiesAnHttpImageIdenticallyAndAcrossAnOutage() throws Exception {
    Tools.require("nbdcopy");
    byte[] image = new byte[8 << 20];
    new Random(7).nextBytes(image);
    try (RangeOrigin origin = RangeOrigin.http(image); OriginGate gate = new OriginGate(origin.port())) {
      Path socket = dir.resolve("in.sock");
      Path pidfile = dir.resolve("in.pid");
      Process server = new ProcessBuilder(jnbd("--exit-with-parent", "--foreground", "--pidfile", pidfile.toString(),
          "--unix", socket.toString(), "--threads", "16", "-D", "nbdkit.backend.datapath=0", "--readonly",
          "--filter", "retry", "--filter", "cacheextents", "--filter", "cow",
          "http", "url=" + gate.url("/disk.img"), "timeout=2000"))
          .redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .redirectError(dir.resolve("server.log").toFile())
          .start();
      try {
        for (int i = 0; i < 1200 && !Files.exists(pidfile); i++) {
          Thread.sleep(50);
        }
        assertThat(pidfile).as("pidfile of a started server").exists();
        String uri = "nbd+unix:///?socket=" + socket;
        Path copy = dir.resolve("copy.raw");
        Tools.run(List.of("nbdcopy", "--requests=64", "--flush", uri, copy.toString()), Map.of(), 120).assertSuccess();
        assertThat(Files.readAllBytes(copy)).isEqualTo(image);

        gate.refuse();
        Thread reopen = Thread.ofPlatform().start(() -> {
          try {
            Thread.sleep(2000);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          gate.open();
        });
        Path again = dir.resolve("again.raw");
        Tools.run(List.of("nbdcopy", "--requests=64", "--flush", uri, again.toString()), Map.of(), 120).assertSuccess();
        reopen.join();
        assertThat(Files.readAllBytes(again)).isEqualTo(image);
      } finally {
        server.destroy();
        server.waitFor(60, TimeUnit.SECONDS);
      }
    }
  }

  @Test
  void backgroundStartFailureIsReportedByTheParent() throws Exception {
    Tools.Result start = Tools.run(jnbd("-U", dir.resolve("s").toString(), "testdisk", "1M", "colour=red"),
        Map.of(), 120);
    assertThat(start.exitCode()).isEqualTo(1);
    assertThat(start.stderr()).isEqualTo("jnbd: testdisk: unknown parameter 'colour'\n");
  }

  @Test
  void tlsSessionDebugNamesTheSessionAndNeverTheKey() throws Exception {
    Tools.require("nbdinfo");
    String key = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    Path keys = io.jnbd.testing.TestPki.pskFile(dir.resolve("keys.psk"), "alice", java.util.HexFormat.of().parseHex(key));
    String read = "nbdinfo \"nbds+unix://alice@/?socket=$unixsocket&tls-psk-file=" + keys + "\" >/dev/null";
    String log = Tools.run(jnbd("-v", "-D", "nbdkit.tls.session=1", "--tls=require", "--tls-psk=" + keys, "--run", read,
        "memory", "1M"), Map.of(), 120).assertSuccess().stderr();
    assertThat(log).contains("TLS session: TLS 1.3 ", "PSK, username alice").doesNotContainIgnoringCase(key);
  }

  @Test
  void backgroundStartWithoutTlsCertificatesIsReportedByTheParent() throws Exception {
    Tools.Result start = Tools.run(jnbd("-U", dir.resolve("s").toString(), "--tls=require",
        "--tls-certificates=" + dir, "testdisk", "1M"), Map.of(), 120);
    assertThat(start.exitCode()).isEqualTo(1);
    assertThat(start.stderr()).startsWith("jnbd: --tls=require but could not load TLS certificates");
  }

  @Test
  void exitWithParentStopsTheServerWhenItsParentExits() throws Exception {
    Path pidfile = dir.resolve("jnbd.pid");
    String server = String.join(" ", jnbd("--exit-with-parent", "-U", dir.resolve("s").toString(),
        "-P", pidfile.toString(), "testdisk", "1M").stream().map(ProcessIT::shellQuote).toList());
    // The shell starts the server, waits until it serves, prints its pid and exits.
    String script = server + " >/dev/null 2>&1 & while [ ! -s " + pidfile + " ]; do sleep 0.1; done; cat " + pidfile;
    Tools.Result shell = Tools.run(List.of("sh", "-c", script), Map.of(), 120).assertSuccess();
    long pid = Long.parseLong(shell.stdout().trim());
    ProcessHandle.of(pid).ifPresent(handle -> handle.onExit().join());
    assertThat(ProcessHandle.of(pid).map(ProcessHandle::isAlive)).isNotEqualTo(Optional.of(true));
    assertThat(pidfile).doesNotExist();
  }

  @Test
  void singleModeServesOneClientOnStdinAndStdout() throws Exception {
    Tools.require("nbdsh");
    String argv = String.join(", ", jnbd("-s", "--filter=shrink", "testdisk", "1M", "shrink=1k").stream()
        .map(word -> "'" + word + "'").toList());
    String script = "h.connect_command([" + argv + "]); h.pwrite(b'jnbd' * 128, 0); print(h.get_size(), h.pread(4, 508))";
    Tools.Result r = Tools.run(List.of("nbdsh", "-c", script), Map.of(), 120).assertSuccess();
    assertThat(r.stdout().trim()).isEqualTo("1047552 bytearray(b'jnbd')");
  }

  private static String shellQuote(String word) {
    return "'" + word.replace("'", "'\\''") + "'";
  }

  @Test
  void launcherRunsTheJarFromAnyDirectory() throws Exception {
    Process process = new ProcessBuilder(checkoutLauncher().toString(), "--version")
        .directory(dir.toFile())
        .redirectError(ProcessBuilder.Redirect.DISCARD)
        .start();
    String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(process.waitFor()).isZero();
    assertThat(out).matches("jnbd \\S+ \\(nbdkit \\d+\\.\\d+\\.\\d+ compatible\\)\\n");
  }

  /**
   * The build makes both AOT caches, and the launcher starts each kind of server on its own one,
   * which the JVM keeps mapped (it unmaps, silently under the launcher's options, a cache that
   * does not fit it).
   */
  @Test
  void launcherMapsTheLocalCacheForAMemoryServerAndTheWholeOneForTls() throws Exception {
    Path launcher = checkoutLauncher();
    Path target = launcher.resolveSibling("target");
    Path keys = Files.writeString(dir.resolve("keys.psk"), "alice:0123456789abcdef0123456789abcdef\n");
    Map<String, List<String>> servers = Map.of(
        "jnbd-local.aot", List.of("memory", "8M"),
        "jnbd.aot", List.of("--tls=on", "--tls-psk=" + keys, "memory", "8M"));
    for (var server : servers.entrySet()) {
      assertThat(target.resolve(server.getKey())).as("the build's AOT cache").exists();
      Path maps = dir.resolve("maps-" + server.getKey());
      List<String> command = new ArrayList<>(List.of(launcher.toString(), "-U", "-"));
      command.addAll(server.getValue());
      command.addAll(List.of("--run", "cat /proc/$PPID/maps > " + maps));
      Tools.run(command, Map.of(), 60).assertSuccess();
      String other = server.getKey().equals("jnbd.aot") ? "jnbd-local.aot" : "jnbd.aot";
      assertThat(Files.readString(maps)).as("%s", server.getValue())
          .contains(target.resolve(server.getKey()).toRealPath().toString())
          .doesNotContain(target.resolve(other).toRealPath().toString());
    }
  }

  /** The checkout's ./jnbd, after checking that it will not rebuild the jar. */
  private static Path checkoutLauncher() throws IOException {
    String jar = System.getProperty("jnbd.jar");
    assertThat(jar).as("the packaged jar (run under mvn verify)").isNotNull().satisfies(j -> assertThat(Path.of(j)).exists());
    Path root = Path.of(jar).toAbsolutePath().getParent().getParent();
    // A stale jar would make the launcher run Maven inside this very build: leave that alone.
    long built = Files.getLastModifiedTime(Path.of(jar)).toMillis();
    try (var files = Files.walk(root.resolve("src"))) {
      assertThat(files.allMatch(f -> modified(f) <= built) && modified(root.resolve("pom.xml")) <= built)
          .as("sources changed during the build; the launcher would rebuild the jar").isTrue();
    }
    return root.resolve("jnbd");
  }

  private static long modified(Path file) {
    try {
      return Files.getLastModifiedTime(file).toMillis();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
