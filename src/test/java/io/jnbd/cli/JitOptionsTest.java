package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.Tools;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The launchers' JIT choice (bin/jvm-options.sh) and the compiler directives it gives a JVM that
 * speaks TLS (bin/c2-crypto.json): which command lines get them, and that a JVM starts with them
 * and keeps stdout clean (a file that does not parse stops the JVM).
 */
class JitOptionsTest {
  private static final Path BIN = Path.of("bin");
  private static final String DIRECTIVES = "-XX:CompilerDirectivesFile=" + BIN.resolve("c2-crypto.json");

  @Test
  void httpsAndTlsGetTheDirectivesAndOthersDoNot() {
    assertThat(options("-r", "http", "url=https://example.com/disk.img")).contains(DIRECTIVES);
    assertThat(options("-r", "curl", "https://example.com/disk.img")).contains(DIRECTIVES);
    assertThat(options("--tls=require", "memory", "1G")).contains(DIRECTIVES);
    assertThat(options("-r", "http", "url=http://example.com/disk.img")).contains("-XX:TieredStopAtLevel=1").doesNotContain(DIRECTIVES);
    assertThat(options("--tls", "off", "memory", "1G")).contains("-XX:TieredStopAtLevel=1").doesNotContain(DIRECTIVES);
    // ssh was measured with every method open to C2, and keeps that.
    assertThat(options("ssh", "host=example.com", "path=/disk")).doesNotContain(DIRECTIVES, "TieredStopAtLevel");
  }

  /** Early C2 for the bulk ciphers a stream runs through, not for what a handshake runs a few times. */
  @Test
  void onlyTheBulkCiphersAreCompiledEarly() {
    String early = "-XX:CompileCommand=CompileThresholdScaling,com.sun.crypto.provider.";
    assertThat(options("--tls=require", "memory", "1G"))
        .contains(early + "GaloisCounterMode*::*,0.01", early + "GHASH::*,0.01", early + "CounterMode::*,0.01")
        .doesNotContain(early + "*::*", "HKDF", "AESCrypt");
    assertThat(options("ssh", "host=example.com", "path=/disk")).contains(early + "HmacCore*::*,0.01");
  }

  @Test
  void aJvmStartsWithTheHttpsOptionsAndPrintsNothing() {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(Arrays.asList(options("-r", "http", "url=https://example.com/disk.img").split(" ")));
    command.add("-version");
    Tools.Result result = Tools.run(command, Map.of(), 60);
    assertThat(result.exitCode()).as("a JVM with the directives (stderr: %s)", result.stderr()).isZero();
    assertThat(result.stdout()).as("stdout may belong to a script").isEmpty();
  }

  /** The JVM options the launchers would use for this command line. */
  private static String options(String... commandLine) {
    List<String> command = new ArrayList<>(List.of("sh", "-c",
        "jnbd_options_dir=" + BIN + "; . \"$jnbd_options_dir/jvm-options.sh\"; printf %s \"$jnbd_jvm_options\"", "jnbd"));
    command.addAll(List.of(commandLine));
    return Tools.run(command, Map.of(), 30).assertSuccess().stdout();
  }
}
