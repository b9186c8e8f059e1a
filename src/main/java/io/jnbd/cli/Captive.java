package io.jnbd.cli;

import java.io.IOException;
import java.util.Map;

/** --run: runs a shell command against the running server and returns its exit status. */
final class Captive {
  private Captive() {}

  /**
   * Runs {@code sh -c command} with the caller's stdin, stdout and stderr and the given extra
   * environment, and waits for it. A command killed by a signal yields 128 + the signal number,
   * as a shell reports it.
   */
  static int run(String command, Map<String, String> environment) throws IOException, InterruptedException {
    ProcessBuilder builder = new ProcessBuilder("sh", "-c", command).inheritIO();
    builder.environment().putAll(environment);
    Process process = builder.start();
    try {
      return process.waitFor();
    } finally {
      // Only reached early when this thread is interrupted: never leave the command behind.
      process.destroy();
    }
  }
}
