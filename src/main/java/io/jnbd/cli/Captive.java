package io.jnbd.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/** --run: runs a shell command against the running server and returns its exit status. */
final class Captive {
  /** The status a shell gives a command it cannot find. */
  static final int NOT_FOUND = 127;

  /**
   * The Debian and Ubuntu package of each client program a --run command is likely to name, so
   * that a first try on a fresh machine (the README's first command runs nbdinfo) says what to
   * install instead of only "not found".
   */
  private static final Map<String, String> CLIENT_PACKAGES = Map.of(
      "nbdinfo", "libnbd-bin",
      "nbdcopy", "libnbd-bin",
      "nbddump", "libnbd-bin",
      "nbdsh", "python3-libnbd",
      "nbdfuse", "nbdfuse",
      "qemu-img", "qemu-utils",
      "qemu-io", "qemu-utils",
      "qemu-nbd", "qemu-utils",
      "guestfish", "libguestfs-tools");

  private Captive() {}

  /**
   * Runs {@code sh -c command} with the caller's stdin, stdout and stderr and the given extra
   * environment, and waits for it. A command killed by a signal yields 128 + the signal number,
   * as a shell reports it. When the shell could not find a client program, says which package
   * has it.
   */
  static int run(String command, Map<String, String> environment, PrintStream err) throws IOException, InterruptedException {
    // /bin/sh by its path: PATH is the command's business, and may not lead to a shell at all.
    ProcessBuilder builder = new ProcessBuilder("/bin/sh", "-c", command).inheritIO();
    builder.environment().putAll(environment);
    Process process = builder.start();
    try {
      int status = process.waitFor();
      if (status == NOT_FOUND) {
        missingClients(command, Captive::onPath).forEach(err::println);
      }
      return status;
    } finally {
      // Only reached early when this thread is interrupted: never leave the command behind.
      process.destroy();
    }
  }

  /** One line for each known client program that the command names and that is not installed. */
  static List<String> missingClients(String command, Predicate<String> installed) {
    return Arrays.stream(command.split("[^A-Za-z0-9._-]+"))
        .filter(CLIENT_PACKAGES::containsKey)
        .distinct()
        .filter(installed.negate())
        .map(tool -> "jnbd: --run: " + tool + " is not installed; on Debian or Ubuntu it is in the "
            + CLIENT_PACKAGES.get(tool) + " package (apt-get install " + CLIENT_PACKAGES.get(tool) + ")")
        .toList();
  }

  private static boolean onPath(String program) {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, program))) {
        return true;
      }
    }
    return false;
  }
}
