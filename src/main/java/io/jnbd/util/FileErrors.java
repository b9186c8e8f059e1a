package io.jnbd.util;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

/** File errors in words for a one-line message that already names the file. */
public final class FileErrors {
  private FileErrors() {}

  /**
   * Why the operation failed, without the file names: a {@link FileSystemException}'s message
   * repeats them (for a move, both), and its reason is empty for access denied and a missing file.
   */
  public static String reason(IOException e) {
    return switch (e) {
      case AccessDeniedException denied -> "permission denied";
      case NoSuchFileException missing -> "no such file or directory";
      case FileSystemException failed when failed.getReason() != null -> failed.getReason();
      default -> e.getMessage() != null ? e.getMessage() : e.toString();
    };
  }
}
