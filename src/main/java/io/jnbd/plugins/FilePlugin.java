package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves a local file or block device. The file is opened once, at configuration time, and
 * shared by every connection (one page cache, one flush), so multi-conn is safe. When the file
 * cannot be opened for writing it is served read-only.
 *
 * <p>Holes: where {@link NativeFileOps} is available (Linux, JDK 22+), trim and zero punch holes
 * or zero ranges with fallocate and extents come from SEEK_DATA/SEEK_HOLE; elsewhere zero is left
 * to the server (writing zeroes), trim is not offered and everything is reported as data.
 */
public final class FilePlugin implements Plugin {
  private static final Logger LOG = LoggerFactory.getLogger(FilePlugin.class);
  private static final List<String> FADVISE_VALUES = List.of("normal", "random", "sequential");
  /** File type bits of st_mode, and the type of a block device. */
  private static final int S_IFMT = 0170000;
  private static final int S_IFBLK = 0060000;

  private final boolean nativeAllowed;
  private Path file;
  private FileChannel channel;
  private boolean writable;
  private NativeFileOps.NativeFile nativeFile;
  /** Cleared for good when the file system says it cannot punch holes or zero ranges. */
  private final AtomicBoolean punchHoleWorks = new AtomicBoolean(true);
  private final AtomicBoolean zeroRangeWorks = new AtomicBoolean(true);

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
    return "serves a local file or block device";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("file", "FILENAME", "The file or block device to serve (required)."),
        new Parameter("fadvise", "normal|random|sequential",
            "Access pattern hint, accepted for nbdkit compatibility and currently ignored (default normal)."));
  }

  @Override
  public String magicConfigKey() {
    return "file";
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "file" -> {
        if (value.isEmpty()) {
          throw new ConfigException("file: file parameter must not be empty");
        }
        file = Path.of(value).toAbsolutePath();
      }
      case "fadvise" -> {
        if (!FADVISE_VALUES.contains(value)) {
          throw new ConfigException("file: fadvise must be normal, random or sequential: '" + value + "'");
        }
      }
      default -> throw new ConfigException("file: unknown parameter '" + key + "'");
    }
    return true;
  }

  @Override
  public void configComplete() {
    if (file == null) {
      throw new ConfigException("file: the file parameter is required (e.g. file=disk.img)");
    }
    if (!Files.exists(file)) {
      throw new ConfigException("file: " + file + ": no such file");
    }
    if (Files.isDirectory(file)) {
      throw new ConfigException("file: " + file + ": is a directory");
    }
    if (!Files.isRegularFile(file) && !isBlockDevice(file)) {
      // A FIFO or character device has no size and no offsets: it would be served as 0 bytes.
      throw new ConfigException("file: " + file + ": not a regular file or block device");
    }
    try {
      try {
        channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        writable = true;
      } catch (FileSystemException e) {
        // No permission or a read-only file system: serve read-only. Any other cause (the file
        // vanished, ...) fails the read-only open too and is reported from there.
        channel = FileChannel.open(file, StandardOpenOption.READ);
      }
    } catch (IOException e) {
      throw new ConfigException("file: cannot open " + file + ": " + e.getMessage(), e);
    }
    if (nativeAllowed && NativeFileOps.available()) {
      try {
        nativeFile = NativeFileOps.open(file, writable);
      } catch (IOException e) {
        LOG.warn("file: {}: no hole punching or extents: {}", file, e.getMessage());
      }
    } else if (nativeAllowed) {
      LOG.debug("file: native file operations unavailable: {}", NativeFileOps.unavailableReason());
    }
  }

  private static boolean isBlockDevice(Path path) {
    try {
      int mode = (Integer) Files.getAttribute(path, "unix:mode");
      return (mode & S_IFMT) == S_IFBLK;
    } catch (IOException | UnsupportedOperationException e) {
      return false;
    }
  }

  @Override
  public List<String> dumpLines() {
    return List.of("file_native_ops=" + (nativeAllowed && NativeFileOps.available() ? "yes" : "no"));
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    return new FileExport(size(), writable && !readOnly);
  }

  @Override
  public void unload() {
    try {
      if (channel != null) {
        channel.close();
      }
    } catch (IOException e) {
      LOG.warn("file: closing {}: {}", file, e.getMessage());
    }
    if (nativeFile != null) {
      nativeFile.close();
    }
  }

  /** The current size; seeking to the end also works for block devices, whose stat size is 0. */
  private long size() throws IOException {
    if (nativeFile != null) {
      NativeFileOps.Result end = nativeFile.seekEnd();
      if (!end.failed()) {
        return end.value();
      }
    }
    return channel.size();
  }

  private final class FileExport implements Export {
    private final long size;
    private final boolean canWrite;

    FileExport(long size, boolean canWrite) {
      this.size = size;
      this.canWrite = canWrite;
    }

    @Override
    public long size() {
      return size;
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      long at = offset;
      while (buffer.hasRemaining()) {
        int n = channel.read(buffer, at);
        if (n < 0) {
          throw new NbdException(Errno.EIO, "file: unexpected end of file at offset " + at);
        }
        at += n;
      }
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      long at = offset;
      while (buffer.hasRemaining()) {
        at += channel.write(buffer, at);
      }
    }

    @Override
    public void flush() throws IOException {
      channel.force(true);
    }

    @Override
    public void trim(long offset, long length, int flags) {
      // Trim is advisory: if the file system will not punch the hole, the data simply stays.
      punchHole(offset, length);
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      if (Flags.has(flags, Flags.MAY_TRIM) && punchHole(offset, length)) {
        return;
      }
      if (nativeFile != null && zeroRangeWorks.get()) {
        NativeFileOps.Result result = nativeFile.zeroRange(offset, length);
        if (!result.failed()) {
          return;
        }
        giveUpIfUnsupported(zeroRangeWorks, result, "zero range");
      }
      // ENOTSUP lets the server write zeroes instead, unless the client asked for a fast zero.
      throw new NbdException(Errno.ENOTSUP, "file: cannot zero this range without writing");
    }

    @Override
    public void extents(long offset, long length, int flags, Extents extents) {
      if (nativeFile == null) {
        extents.add(offset, length, Extents.DATA);
        return;
      }
      long end = Math.min(offset + length, size);
      long at = offset;
      while (at < end && !extents.isFull()) {
        NativeFileOps.Result data = nativeFile.seekData(at);
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
        NativeFileOps.Result hole = nativeFile.seekHole(at);
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
      if (nativeFile == null) {
        return;
      }
      int error = nativeFile.willNeed(offset, length);
      if (error != 0) {
        LOG.debug("file: posix_fadvise(WILLNEED) failed with errno {}", error);
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
      return canWrite && nativeFile != null;
    }

    @Override
    public Support canZero() {
      return canWrite && nativeFile != null ? Support.NATIVE : Support.EMULATE;
    }

    @Override
    public boolean canFastZero() {
      // A native zero that cannot use fallocate fails fast with ENOTSUP instead of writing.
      return nativeFile != null;
    }

    @Override
    public boolean canExtents() {
      return nativeFile != null;
    }

    @Override
    public Support canCache() {
      return nativeFile != null ? Support.NATIVE : Support.EMULATE;
    }

    @Override
    public boolean canMultiConn() {
      return true;
    }
  }

  /** Punches a hole; false when the file system cannot (the range is then unchanged). */
  private boolean punchHole(long offset, long length) {
    if (nativeFile == null || !punchHoleWorks.get()) {
      return false;
    }
    NativeFileOps.Result result = nativeFile.punchHole(offset, length);
    if (result.failed()) {
      giveUpIfUnsupported(punchHoleWorks, result, "punch hole");
      return false;
    }
    return true;
  }

  private void giveUpIfUnsupported(AtomicBoolean works, NativeFileOps.Result result, String what) {
    if (result.errno() == NativeFileOps.EOPNOTSUPP || result.errno() == NativeFileOps.ENOSYS) {
      if (works.getAndSet(false)) {
        LOG.info("file: {}: the file system cannot {}; falling back", file, what);
      }
    } else {
      LOG.debug("file: {}: {} failed with errno {}", file, what, result.errno());
    }
  }
}
