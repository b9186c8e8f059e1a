package io.jnbd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs the real NBD clients (nbdinfo, nbdcopy, nbdsh, qemu-img) with a time limit. */
public final class Tools {
  private Tools() {}

  /** What a finished command printed and returned. */
  public record Result(int exitCode, String stdout, String stderr) {
    public Result assertSuccess() {
      if (exitCode != 0) {
        throw new AssertionError("command failed with " + exitCode + ":\n" + stderr + stdout);
      }
      return this;
    }
  }

  /** The Debian package that provides each tool a test may require. */
  private static final Map<String, String> PACKAGES = Map.ofEntries(
      Map.entry("nbdinfo", "libnbd-bin"),
      Map.entry("nbdcopy", "libnbd-bin"),
      Map.entry("nbdsh", "python3-libnbd"),
      Map.entry("qemu-img", "qemu-utils"),
      Map.entry("qemu-nbd", "qemu-utils"),
      Map.entry("nbdkit", "nbdkit"),
      Map.entry("qemu-io", "qemu-utils"),
      Map.entry("fincore", "util-linux"),
      Map.entry("systemd-socket-activate", "systemd"),
      Map.entry("chattr", "e2fsprogs"),
      Map.entry("sshd", "openssh-server"),
      Map.entry("ssh-keygen", "openssh-client"),
      Map.entry("python3-libnbd", "python3-libnbd"));

  private static final Map<String, java.util.concurrent.atomic.AtomicInteger> REQUIRED = new java.util.concurrent.ConcurrentHashMap<>();

  /**
   * Fails the calling test, naming the package to install, unless every named tool is there. A
   * missing tool is a broken test machine, not a reason to skip: `.ci/run` installs them all.
   * "python3-libnbd" stands for Debian's python3 with libnbd's module (what nbdsh and the probe
   * scripts run on).
   */
  public static void require(String... tools) {
    for (String tool : tools) {
      REQUIRED.computeIfAbsent(tool, t -> new java.util.concurrent.atomic.AtomicInteger()).incrementAndGet();
      boolean present = tool.equals("python3-libnbd")
          ? Files.isExecutable(Path.of("/usr/bin/python3"))
              && run("/usr/bin/python3", "-c", "import nbd").exitCode() == 0
          : onPath(tool);
      if (!present) {
        throw new AssertionError(tool + " is not installed: install Debian's "
            + PACKAGES.getOrDefault(tool, tool) + " package (.ci/run does)");
      }
    }
  }

  /** How many tests required each tool in this JVM, for the summary the test run prints. */
  public static Map<String, Integer> requiredCounts() {
    Map<String, Integer> counts = new java.util.TreeMap<>();
    REQUIRED.forEach((tool, count) -> counts.put(tool, count.get()));
    return counts;
  }

  private static boolean onPath(String program) {
    for (String dir : ("/usr/bin:/bin:/usr/sbin:" + System.getenv().getOrDefault("PATH", "")).split(":")) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, program))) {
        return true;
      }
    }
    return false;
  }

  public static Result run(String... command) {
    return run(List.of(command), Map.of(), 120);
  }

  /**
   * Runs a command with /usr/bin first on PATH, so nbdsh finds Debian's python3 with the libnbd
   * module rather than another python3 earlier on PATH.
   */
  public static Result run(List<String> command, Map<String, String> env, int timeoutSeconds) {
    try {
      ProcessBuilder builder = new ProcessBuilder(new ArrayList<>(command));
      builder.environment().put("PATH", "/usr/bin:/bin:" + System.getenv().getOrDefault("PATH", ""));
      builder.environment().putAll(env);
      builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      Path out = Files.createTempFile("jnbd-tool", ".out");
      Path err = Files.createTempFile("jnbd-tool", ".err");
      try {
        builder.redirectOutput(out.toFile()).redirectError(err.toFile());
        Process process = builder.start();
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor();
          throw new AssertionError("timed out after " + timeoutSeconds + " s: " + command
              + "\n" + Files.readString(err) + Files.readString(out));
        }
        return new Result(process.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
            Files.readString(err, StandardCharsets.UTF_8));
      } finally {
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  /** Runs a Python script under nbdsh with the export connected as {@code h}. */
  public static Result nbdsh(String uri, String script) {
    return run(List.of("nbdsh", "-u", uri, "-c", script), Map.of(), 120);
  }

  /** As {@link #nbdsh}, with the {@code base:allocation} context negotiated for {@code h.block_status}. */
  public static Result nbdshWithExtents(String uri, String script) {
    return run(List.of("nbdsh", "--base-allocation", "-u", uri, "-c", script), Map.of(), 120);
  }
}
