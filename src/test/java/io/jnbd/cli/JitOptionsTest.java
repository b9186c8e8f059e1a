package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.Tools;
import io.jnbd.util.NativeMemory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The launchers' JVM options (bin/jvm-options.sh): the JIT choice and the compiler directives it
 * gives a JVM that speaks TLS (bin/c2-crypto.json), which command lines get them, and that a JVM
 * starts with them and keeps stdout clean (a file that does not parse stops the JVM); which AOT
 * cache a command line gets; and that the JDK's class-file API stays out of the JIT.
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

  /** The smaller cache, young generation and collector only where no other host and no TLS is involved. */
  @Test
  void serversThatReachNoOtherHostGetTheLocalCache() {
    for (List<String> local : List.of(List.of("memory", "1G"), List.of("-r", "file", "disk.img"),
        List.of("--tls", "off", "null"), List.of("--version"), List.of("-U", "http.sock", "pattern", "1G"))) {
      assertThat(sourced("jnbd_aot_cache", local)).as("%s", local).isEqualTo("jnbd-local.aot");
      assertThat(sourced("jnbd_jvm_options", local)).as("%s", local).contains("-Xmn4m", "-XX:+UseSerialGC");
    }
    for (List<String> remote : List.of(List.of("-r", "http", "url=http://example.com/disk.img"),
        List.of("curl", "https://example.com/disk.img"), List.of("nbd", "socket=/run/up.sock"),
        List.of("ssh", "host=example.com", "path=/disk"), List.of("--tls=require", "memory", "1G"),
        List.of("--tls", "on", "file", "disk.img"))) {
      assertThat(sourced("jnbd_aot_cache", remote)).as("%s", remote).isEqualTo("jnbd.aot");
      assertThat(sourced("jnbd_jvm_options", remote)).as("%s", remote).doesNotContain("-Xmn", "SerialGC");
    }
  }

  /**
   * The foreign function API's first call stubs are generated through the class-file API, which
   * C1 compiles when nothing stops it (the check that this test can fail), and not with the
   * launchers' options.
   */
  @Test
  void theClassFileApiThatGeneratesCallStubsIsNotCompiled() {
    String options = options("memory", "1G");
    String unexcluded = String.join(" ",
        Arrays.stream(options.split(" ")).filter(option -> !option.contains("classfile")).toList());
    assertThat(classFileApiCompiles(unexcluded)).isPositive();
    assertThat(classFileApiCompiles(options)).isZero();
  }

  private static long classFileApiCompiles(String options) {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(Arrays.asList(options.split(" ")));
    command.addAll(List.of("-XX:+PrintCompilation", "-cp", "target/classes:target/test-classes",
        LinksCallStubs.class.getName()));
    Tools.Result result = Tools.run(command, Map.of(), 60).assertSuccess();
    return result.stdout().lines().filter(line -> line.contains("classfile.")).count();
  }

  /** Links and calls the buffer pool's C library functions, as a server's first connection does. */
  public static final class LinksCallStubs {
    public static void main(String[] args) {
      NativeMemory.free(NativeMemory.aligned(4096, 4096));
      NativeMemory.free(NativeMemory.calloc(4096));
    }
  }

  /** The JVM options the launchers would use for this command line. */
  private static String options(String... commandLine) {
    return sourced("jnbd_jvm_options", List.of(commandLine));
  }

  /** A variable that bin/jvm-options.sh sets, sourced with this command line as its arguments. */
  private static String sourced(String variable, List<String> commandLine) {
    List<String> command = new ArrayList<>(List.of("sh", "-c",
        "jnbd_options_dir=" + BIN + "; . \"$jnbd_options_dir/jvm-options.sh\"; printf %s \"$" + variable + "\"", "jnbd"));
    command.addAll(commandLine);
    return Tools.run(command, Map.of(), 30).assertSuccess().stdout();
  }
}
