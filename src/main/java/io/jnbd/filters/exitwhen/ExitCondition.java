package io.jnbd.filters.exitwhen;

import io.jnbd.api.ConfigException;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** One exit-when-* event: something outside the server whose happening makes it exit. */
sealed interface ExitCondition {
  /** Checks now; may take a while (a script runs). */
  boolean happened();

  /** Releases what watching took; called once at unload. */
  default void close() {}

  /** exit-when-file-created. */
  record FileCreated(Path path) implements ExitCondition {
    @Override
    public boolean happened() {
      return Files.exists(path);
    }
  }

  /** exit-when-file-deleted. */
  record FileDeleted(Path path) implements ExitCondition {
    @Override
    public boolean happened() {
      return !Files.exists(path);
    }
  }

  /** exit-when-process-exits; as with nbdkit, a reused process ID keeps the server up. */
  record ProcessExits(long pid) implements ExitCondition {
    @Override
    public boolean happened() {
      return ProcessHandle.of(pid).map(process -> !process.isAlive()).orElse(true);
    }
  }

  /**
   * exit-when-script: the shell command exits 88 when the event happened and 0 when not; any
   * other status is logged and counts as not yet. Its output is discarded (stdout may be the NBD
   * connection itself, with -s), its errors go to the server's stderr.
   */
  record ScriptSays(String script) implements ExitCondition {
    private static final Logger log = LoggerFactory.getLogger(ScriptSays.class);
    static final int HAPPENED = 88;

    @Override
    public boolean happened() {
      try {
        Process process = new ProcessBuilder("/bin/sh", "-c", script)
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start();
        int status = process.waitFor();
        if (status != 0 && status != HAPPENED) {
          log.error("exitwhen: exit-when-script: '{}' exited with status {}", script, status);
        }
        return status == HAPPENED;
      } catch (IOException e) {
        log.error("exitwhen: exit-when-script: cannot run '{}': {}", script, e.getMessage());
        return false;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }
  }

  /**
   * exit-when-pipe-closed: the read end of a pipe the server inherited as descriptor {@code fd}.
   * Java cannot poll a descriptor it did not open, so a thread reads the pipe through
   * /proc/self/fd (a pipe opened there never waits for a writer) and sees end of file once every
   * writer has closed it. What the writer sends is read and dropped.
   */
  final class PipeClosed implements ExitCondition {
    private final int fd;
    private final InputStream pipe;
    private volatile boolean closed;

    PipeClosed(int fd) {
      this.fd = fd;
      Path path = Path.of("/proc/self/fd/" + fd);
      try {
        String target = Files.readSymbolicLink(path).toString();
        boolean fifo = Files.readAttributes(path, BasicFileAttributes.class).isOther();
        if (!target.startsWith("pipe:") && !fifo) {
          throw new ConfigException("exitwhen: exit-when-pipe-closed: descriptor " + fd + " is not a pipe but " + target
              + " (a background start cannot pass descriptors on: use -f)");
        }
        pipe = Files.newInputStream(path);
      } catch (IOException e) {
        throw new ConfigException("exitwhen: exit-when-pipe-closed: invalid file descriptor " + fd
            + " (a background start cannot pass descriptors on: use -f)");
      }
      Thread.ofPlatform().daemon().name("exitwhen-pipe-" + fd).start(this::drain);
    }

    private void drain() {
      byte[] discard = new byte[4096];
      try {
        while (pipe.read(discard) >= 0) {
          // Only the end matters.
        }
      } catch (IOException e) {
        // Closed at unload, or broken: either way nobody writes to it any more.
      }
      closed = true;
    }

    @Override
    public boolean happened() {
      return closed;
    }

    @Override
    public void close() {
      try {
        pipe.close();
      } catch (IOException e) {
        // Done with it either way.
      }
    }

    @Override
    public String toString() {
      return "PipeClosed[" + fd + "]";
    }
  }
}
