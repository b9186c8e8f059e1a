package io.jnbd.cli;

import io.jnbd.util.FileErrors;
import io.jnbd.util.PathEntry;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.Optional;

/**
 * The -P file: the server's pid and a newline, as nbdkit writes it. It replaces only a regular
 * file (a stale pidfile), never writes through a symlink, and is removed at exit only while it is
 * still the file written, with the content written.
 */
final class Pidfile {
  /** nbdkit's mode, 0644 less the umask. */
  private static final FileAttribute<?> READABLE_BY_ALL =
      PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r--r--"));

  private final PathEntry written;
  private final byte[] content;

  private Pidfile(PathEntry written, byte[] content) {
    this.written = written;
    this.content = content;
  }

  /** Writes this process's pid to path, replacing a stale pidfile there. */
  static Pidfile write(Path path) throws IOException {
    Path target = path.toAbsolutePath();
    Optional<PathEntry> existing = PathEntry.read(target);
    if (existing.isPresent() && !existing.get().isRegularFile()) {
      throw cannotWrite(target, "it is " + existing.get().typeName() + ", not a regular file");
    }
    Path directory = target.getParent();
    if (Files.notExists(directory)) {
      throw cannotWrite(target, "directory " + directory + " does not exist");
    }
    byte[] content = (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII);
    try {
      replaceAtomically(target, content);
    } catch (IOException e) {
      throw cannotWrite(target, FileErrors.reason(e));
    }
    PathEntry written = PathEntry.read(target)
        .orElseThrow(() -> cannotWrite(target, "it was removed as soon as it was written"));
    return new Pidfile(written, content);
  }

  private static void replaceAtomically(Path target, byte[] content) throws IOException {
    // A new file under a name nobody can predict: a fixed name could be a symlink planted there.
    Path partial = Files.createTempFile(target.getParent(), "." + target.getFileName() + ".", ".partial",
        READABLE_BY_ALL);
    try {
      Files.write(partial, content);
      // rename(2): whoever polls for the pidfile never reads it half written, and a symlink put
      // at the target since the check is replaced, not followed.
      Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(partial);
      throw e;
    }
  }

  /** Removes the pidfile unless another process has replaced or rewritten it since. */
  void remove() throws IOException {
    if (written.isCurrent() && Arrays.equals(Files.readAllBytes(written.path()), content)) {
      written.deleteIfCurrent();
    }
  }

  private static IOException cannotWrite(Path target, String reason) {
    return new IOException("cannot write pidfile " + target + ": " + reason);
  }
}
