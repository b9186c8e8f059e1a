package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import io.jnbd.api.Values;
import io.jnbd.plugins.NativeFileOps.Advice;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Serves a local file or block device (file=), or every regular file and block device directly
 * inside a directory, one export per file name (dir=).
 *
 * <p>In file= mode the file is opened once, at configuration time, and shared by every
 * connection (one page cache, one flush). In dir= mode the directory is read at each listing
 * and each connection opens the file it names; a flush through any descriptor of a file makes
 * all its writes durable, so multi-conn is safe in both. A file that cannot be opened for
 * writing is served read-only.
 *
 * <p>Holes: where {@link NativeFileOps} is available (Linux), trim and zero punch holes or zero
 * ranges with fallocate and extents come from SEEK_DATA/SEEK_HOLE; elsewhere zero is left to
 * the server (writing zeroes), trim is not offered and everything is reported as data.
 */
public final class FilePlugin implements Plugin {
  private final boolean nativeAllowed;
  private Path file;
  private Path directory;
  private boolean reduceMemoryPressure;
  private Advice fadvise = Advice.NORMAL;
  private FileSettings settings;
  /** The file served in file= mode; null in dir= mode. */
  private OpenFile shared;

  public FilePlugin() {
    // Native calls are bound only when a file is served: the catalog instantiates every plugin,
    // and binding prints the JVM's native-access warning.
    this(true);
  }

  /** With {@code nativeAllowed} false, behaves as where native file calls are unavailable (tests). */
  FilePlugin(boolean nativeAllowed) {
    this.nativeAllowed = nativeAllowed;
  }

  @Override
  public String name() {
    return "file";
  }

  @Override
  public String description() {
    return "serves a local file or block device, or the files in a directory";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("file", "FILENAME", "The file or block device to serve. One of file= or dir= is required."),
        new Parameter("dir", "DIRECTORY",
            "Serve every regular file and block device directly in DIRECTORY (symbolic links followed), "
                + "each as an export named by its file name; there is no default export."),
        new Parameter("reduce-memory-pressure", "true|false",
            "Drop what is read or written from the kernel's page cache, waiting for writes to reach "
                + "the disk a few writes behind (default false)."),
        new Parameter("cache", "default|none", "The older name of reduce-memory-pressure: none is true (default default)."),
        new Parameter("fadvise", "normal|random|sequential",
            "Access pattern hint for the kernel's read-ahead: random turns it off, sequential doubles it (default normal)."));
  }

  @Override
  public String magicConfigKey() {
    return "file";
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "file" -> file = nonEmptyPath(key, value);
      case "dir" -> directory = nonEmptyPath(key, value);
      case "reduce-memory-pressure" -> reduceMemoryPressure = Values.parseBool("file: " + key, value);
      case "cache" -> reduceMemoryPressure = switch (value) {
        case "default" -> false;
        case "none" -> true;
        default -> throw new ConfigException("file: cache must be default or none: '" + value + "'");
      };
      case "fadvise" -> fadvise = switch (value) {
        case "normal", "random", "sequential" -> Advice.valueOf(value.toUpperCase(Locale.ROOT));
        default -> throw new ConfigException("file: fadvise must be normal, random or sequential: '" + value + "'");
      };
      default -> throw new ConfigException("file: unknown parameter '" + key + "'");
    }
    return true;
  }

  private static Path nonEmptyPath(String key, String value) {
    if (value.isEmpty()) {
      throw new ConfigException("file: " + key + " parameter must not be empty");
    }
    return Path.of(value).toAbsolutePath();
  }

  @Override
  public void configComplete() {
    settings = new FileSettings(file, directory, reduceMemoryPressure, fadvise);
    if (settings.file() != null) {
      try {
        // Whether any connection will write is not known yet: open for writing where allowed.
        shared = OpenFile.open(settings.file(), settings, false, nativeAllowed);
      } catch (ConfigException e) {
        throw e;
      } catch (IOException e) {
        throw new ConfigException("file: cannot open " + settings.file() + ": " + e.getMessage(), e);
      }
    }
  }

  @Override
  public List<String> dumpLines() {
    return List.of("file_native_ops=" + (nativeAllowed && NativeFileOps.available() ? "yes" : "no"));
  }

  @Override
  public List<ExportDescription> listExports(boolean readOnly) throws IOException {
    if (settings.directory() == null) {
      return Plugin.super.listExports(readOnly);
    }
    List<ExportDescription> exports = new ArrayList<>();
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(settings.directory())) {
      for (Path entry : entries) {
        if (OpenFile.isServable(entry)) {
          exports.add(new ExportDescription(entry.getFileName().toString(), ""));
        }
      }
    }
    exports.sort((a, b) -> a.name().compareTo(b.name()));
    return exports;
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    if (shared != null) {
      return new FileExport(shared, shared.writable() && !readOnly, false);
    }
    Path path = fileInDirectory(exportName);
    OpenFile opened;
    try {
      opened = OpenFile.open(path, settings, readOnly, nativeAllowed);
    } catch (ConfigException e) {
      throw new NbdException(Errno.EINVAL, e.getMessage());
    } catch (IOException e) {
      // Permissions, or the file went away between the checks and the open: the client's problem.
      throw new NbdException(Errno.EINVAL, "file: cannot open " + path + ": " + e.getMessage(), e);
    }
    return new FileExport(opened, opened.writable() && !readOnly, true);
  }

  /** The file an export name stands for in dir= mode: a plain name, never a path. */
  private Path fileInDirectory(String exportName) throws NbdException {
    if (exportName.isEmpty()) {
      throw new NbdException(Errno.EINVAL,
          "file: dir= mode has no default export; ask for one of the file names that --list shows");
    }
    if (exportName.contains("/") || exportName.equals(".") || exportName.equals("..") || exportName.indexOf('\0') >= 0) {
      throw new NbdException(Errno.EINVAL, "file: export name '" + exportName + "' is not a file name");
    }
    return settings.directory().resolve(exportName);
  }

  @Override
  public void unload() {
    if (shared != null) {
      shared.close();
    }
  }

  /** One connection's export of a file; closes the file at the end when it owns it (dir= mode). */
  private static final class FileExport implements Export {
    private final OpenFile file;
    private final long size;
    private final boolean canWrite;
    private final boolean ownsFile;

    FileExport(OpenFile file, boolean canWrite, boolean ownsFile) throws IOException {
      this.file = file;
      this.canWrite = canWrite;
      this.ownsFile = ownsFile;
      try {
        this.size = file.size();
      } catch (IOException | RuntimeException e) {
        close();
        throw e;
      }
    }

    @Override
    public long size() {
      return size;
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      file.read(buffer, offset);
    }

    @Override
    public ReadData readData(long offset, int length) {
      return file.readData(offset, length);
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      file.write(buffer, offset);
    }

    @Override
    public void flush() throws IOException {
      file.flush();
    }

    @Override
    public void trim(long offset, long length, int flags) {
      // Trim is advisory: if the file system will not punch the hole, the data simply stays.
      file.punchHole(offset, length);
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      if (Flags.has(flags, Flags.MAY_TRIM) && file.punchHole(offset, length)) {
        return;
      }
      if (file.zeroRange(offset, length)) {
        return;
      }
      // ENOTSUP lets the server write zeroes instead, unless the client asked for a fast zero.
      throw new NbdException(Errno.ENOTSUP, "file: cannot zero this range without writing");
    }

    @Override
    public void extents(long offset, long length, int flags, Extents extents) {
      if (!file.hasNativeOps()) {
        extents.add(offset, length, Extents.DATA);
        return;
      }
      long end = Math.min(offset + length, size);
      long at = offset;
      while (at < end && !extents.isFull()) {
        NativeFileOps.Result data = file.seekData(at);
        if (data.failed()) {
          // ENXIO: nothing but hole from here to the end of the file.
          extents.add(at, end - at, data.errno() == NativeFileOps.ENXIO ? Extents.HOLE_ZERO : Extents.DATA);
          return;
        }
        if (data.value() > at) {
          extents.add(at, data.value() - at, Extents.HOLE_ZERO);
          at = data.value();
          continue;
        }
        NativeFileOps.Result hole = file.seekHole(at);
        if (hole.failed() || hole.value() <= at) {
          extents.add(at, end - at, Extents.DATA);
          return;
        }
        extents.add(at, hole.value() - at, Extents.DATA);
        at = hole.value();
      }
    }

    @Override
    public void cache(long offset, long length) {
      if (file.hasNativeOps()) {
        file.willNeed(offset, length);
      }
    }

    @Override
    public boolean canWrite() {
      return canWrite;
    }

    @Override
    public boolean canFlush() {
      return true;
    }

    @Override
    public boolean canTrim() {
      return canWrite && file.hasNativeOps();
    }

    @Override
    public Support canZero() {
      return canWrite && file.hasNativeOps() ? Support.NATIVE : Support.EMULATE;
    }

    @Override
    public boolean canFastZero() {
      // A native zero that cannot use fallocate fails fast with ENOTSUP instead of writing.
      return file.hasNativeOps();
    }

    @Override
    public boolean canExtents() {
      return file.hasNativeOps();
    }

    @Override
    public Support canCache() {
      return file.hasNativeOps() ? Support.NATIVE : Support.EMULATE;
    }

    @Override
    public boolean canMultiConn() {
      return true;
    }

    @Override
    public void close() {
      if (ownsFile) {
        file.close();
      }
    }
  }
}
