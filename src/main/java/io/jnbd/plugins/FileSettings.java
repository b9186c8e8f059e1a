package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.plugins.NativeFileOps.Advice;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The file plugin's configuration, checked once all keys are in.
 *
 * @param file the file or block device served (file= mode), or null
 * @param directory the directory whose files are served, one export each (dir= mode), or null
 * @param reduceMemoryPressure drop the pages read or written from the page cache (cache=none)
 * @param fadvise the access hint given to the kernel: NORMAL, RANDOM or SEQUENTIAL
 */
record FileSettings(Path file, Path directory, boolean reduceMemoryPressure, Advice fadvise) {
  FileSettings {
    if (file != null && directory != null) {
      throw new ConfigException("file: file= and dir= cannot be used together");
    }
    if (file == null && directory == null) {
      throw new ConfigException("file: one of file= or dir= is required (e.g. file=disk.img)");
    }
    if (directory != null && !Files.isDirectory(directory)) {
      throw new ConfigException("file: dir=" + directory + ": "
          + (Files.exists(directory) ? "not a directory" : "no such directory"));
    }
  }
}
