package io.jnbd.plugins.http;

import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A secret produced by a shell script (cookie-script, header-script): run once at start, again
 * every {@code renew} on a background virtual thread, and on demand when the server rejects the
 * current value. Readers never wait for a run: they take the last good value. Demand runs are
 * coalesced by generation, so a burst of requests failing with the same value runs the script
 * once. The value itself is never logged.
 */
final class ScriptedValue implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ScriptedValue.class);
  /** A script that has not finished by then is killed: a hung script must not hang readers. */
  private static final Duration SCRIPT_TIME_LIMIT = Duration.ofSeconds(120);
  /** After a failed renewal, the next try comes this soon (or at the period, if shorter). */
  private static final Duration RETRY_AFTER_FAILURE = Duration.ofSeconds(10);

  /** One output of the script; the generation rises with every successful run. */
  record Value(String text, long generation) {}

  private final String key;
  private final String script;
  private final String url;
  private final Duration renew;
  private final ReentrantLock runLock = new ReentrantLock();
  private volatile Value current;
  private long iteration;
  private Thread renewer;
  private volatile boolean closed;

  /**
   * @param key the parameter name, for log and error messages
   * @param url passed to the script as {@code $url}
   * @param renew period of background renewal, or null for none
   */
  ScriptedValue(String key, String script, String url, Duration renew) {
    this.key = key;
    this.script = script;
    this.url = url;
    this.renew = renew;
  }

  /** Runs the script for the first value and starts the background renewal, if any. */
  void start() throws IOException {
    renewIfStill(-1);
    if (renew != null) {
      renewer = Thread.ofVirtual().name("jnbd-" + key + "-renew").start(this::renewForever);
    }
  }

  Value current() {
    return current;
  }

  /**
   * Runs the script unless a run finished since {@code seenGeneration} was current, in which
   * case the newer value is already there. Callers that lose the race wait for the winner.
   */
  void renewIfStill(long seenGeneration) throws IOException {
    runLock.lock();
    try {
      Value now = current;
      if (now != null && now.generation() != seenGeneration) {
        return;
      }
      String text = run();
      current = new Value(text, now == null ? 0 : now.generation() + 1);
    } finally {
      runLock.unlock();
    }
  }

  private void renewForever() {
    Duration wait = renew;
    while (!closed) {
      try {
        Thread.sleep(wait);
        renewIfStill(current.generation());
        wait = renew;
      } catch (InterruptedException e) {
        return;
      } catch (IOException e) {
        wait = renew.compareTo(RETRY_AFTER_FAILURE) < 0 ? renew : RETRY_AFTER_FAILURE;
        log.warn("{}: renewal failed, keeping the previous value and retrying in {} s: {}",
            key, wait.toSeconds(), e.getMessage());
      }
    }
  }

  private String run() throws IOException {
    Path output = Files.createTempFile("jnbd-" + key, ".out");
    try {
      ProcessBuilder builder = new ProcessBuilder("/bin/sh", "-c", script);
      builder.environment().put("url", url);
      builder.environment().put("iteration", Long.toString(iteration++));
      builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      builder.redirectOutput(output.toFile());
      builder.redirectError(ProcessBuilder.Redirect.INHERIT);
      Process process = builder.start();
      if (!process.waitFor(SCRIPT_TIME_LIMIT.toSeconds(), TimeUnit.SECONDS)) {
        process.destroyForcibly();
        throw new NbdException(Errno.EIO, key + ": script did not finish within "
            + SCRIPT_TIME_LIMIT.toSeconds() + " s");
      }
      if (process.exitValue() != 0) {
        throw new NbdException(Errno.EIO, key + ": script failed with exit status " + process.exitValue());
      }
      return Files.readString(output, StandardCharsets.UTF_8);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NbdException(Errno.EIO, key + ": interrupted while running the script");
    } finally {
      Files.deleteIfExists(output);
    }
  }

  @Override
  public void close() {
    closed = true;
    if (renewer != null) {
      renewer.interrupt();
    }
  }
}
