package io.jnbd.util;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

/**
 * What a path names at one moment, without following a symlink: the file's type and its identity
 * (device and inode). Kept from the moment jnbd creates a file, it tells whether the path still
 * names that file, so that jnbd removes only what it made, never what someone put there since.
 */
public record PathEntry(Path path, int type, Object fileKey) {
  private static final int TYPE_MASK = 0170000;
  private static final int SOCKET = 0140000;
  private static final int SYMLINK = 0120000;
  private static final int REGULAR_FILE = 0100000;
  private static final int BLOCK_DEVICE = 0060000;
  private static final int DIRECTORY = 0040000;
  private static final int CHARACTER_DEVICE = 0020000;
  private static final int FIFO = 0010000;

  /** What path names now, or empty if nothing is there. */
  public static Optional<PathEntry> read(Path path) throws IOException {
    try {
      Map<String, Object> attributes = Files.readAttributes(path, "unix:mode,fileKey", LinkOption.NOFOLLOW_LINKS);
      int type = (Integer) attributes.get("mode") & TYPE_MASK;
      return Optional.of(new PathEntry(path, type, attributes.get("fileKey")));
    } catch (NoSuchFileException e) {
      return Optional.empty();
    }
  }

  public boolean isSocket() {
    return type == SOCKET;
  }

  public boolean isRegularFile() {
    return type == REGULAR_FILE;
  }

  /** The type with its article, for messages: "a directory". */
  public String typeName() {
    return switch (type) {
      case SOCKET -> "a socket";
      case SYMLINK -> "a symbolic link";
      case REGULAR_FILE -> "a regular file";
      case BLOCK_DEVICE -> "a block device";
      case DIRECTORY -> "a directory";
      case CHARACTER_DEVICE -> "a character device";
      case FIFO -> "a FIFO";
      default -> "a file of type 0" + Integer.toOctalString(type);
    };
  }

  /** Whether the path still names this same file. */
  public boolean isCurrent() throws IOException {
    return read(path).filter(this::equals).isPresent();
  }

  /**
   * Deletes the path if it still names this file; returns whether it did. The check and the
   * delete are two steps, so only a replacement in the instant between them goes unnoticed.
   */
  public boolean deleteIfCurrent() throws IOException {
    return isCurrent() && Files.deleteIfExists(path);
  }
}
