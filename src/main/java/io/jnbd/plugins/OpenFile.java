package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.plugins.NativeFileOps.Advice;
import io.jnbd.plugins.NativeFileOps.NativeFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One open file or block device of the file plugin: positional I/O, holes, extents and the
 * page-cache policy. In file= mode one instance serves every connection; in dir= mode each
 * connection opens its own. Every method may be called from many threads at once.
 *
 * <p>I/O goes through a FileChannel (heap and direct buffers alike). The native descriptor, where
 * available, does what the channel cannot; with an fadvise access hint it also does the I/O on
 * direct buffers, since the kernel keeps that hint per open file, not per inode.
 */
final class OpenFile implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(OpenFile.class);
  /** File type bits of st_mode, and the type of a block device. */
  private static final int S_IFMT = 0170000;
  private static final int S_IFBLK = 0060000;

  private final Path path;
  private final FileChannel channel;
  private final boolean writable;
  private final NativeFile nativeFile;
  private final boolean nativeIo;
  private final boolean dropReadPages;
  private final WriteEviction writeEviction;
  /** Cleared for good when the file system says it cannot punch holes or zero ranges. */
  private final AtomicBoolean punchHoleWorks = new AtomicBoolean(true);
  private final AtomicBoolean zeroRangeWorks = new AtomicBoolean(true);
  /**
   * Whether a read may meet a hole, so that {@link #readData} asks SEEK_DATA (a few microseconds
   * a read): false for a file that had none when opened (a fully written image, a block device)
   * until this server punches or zeroes a range. Holes made by another process are then sent as
   * data, which reads the same.
   */
  private volatile boolean mayHaveHoles;

  /**
   * Opens a regular file or block device, for writing unless {@code readOnly} or the file does
   * not allow it.
   *
   * @param nativeAllowed false to behave as where native file calls are unavailable (tests)
   * @throws ConfigException when the path is missing or not a regular file or block device
   */
  static OpenFile open(Path path, FileSettings settings, boolean readOnly, boolean nativeAllowed) throws IOException {
    if (!Files.exists(path)) {
      throw new ConfigException("file: " + path + ": no such file");
    }
    if (Files.isDirectory(path)) {
      throw new ConfigException("file: " + path + ": is a directory");
    }
    if (!isServable(path)) {
      // A FIFO or character device has no size and no offsets: it would be served as 0 bytes.
      throw new ConfigException("file: " + path + ": not a regular file or block device");
    }
    FileChannel channel = null;
    boolean writable = false;
    if (!readOnly) {
      try {
        channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        writable = true;
      } catch (FileSystemException e) {
        // No permission or a read-only file system: serve read-only. Any other cause (the file
        // vanished, ...) fails the read-only open too and is reported from there.
      }
    }
    if (channel == null) {
      channel = FileChannel.open(path, StandardOpenOption.READ);
    }
    NativeFile nativeFile = null;
    if (nativeAllowed && NativeFileOps.available()) {
      try {
        nativeFile = NativeFileOps.open(path, writable);
      } catch (IOException e) {
        LOG.warn("file: {}: no hole punching, extents or cache control: {}", path, e.getMessage());
      }
    } else if (nativeAllowed) {
      LOG.debug("file: native file operations unavailable: {}", NativeFileOps.unavailableReason());
    }
    return new OpenFile(path, channel, writable, nativeFile, settings);
  }

  /** True for a regular file or a block device, following symbolic links. */
  static boolean isServable(Path path) {
    if (Files.isRegularFile(path)) {
      return true;
    }
    try {
      int mode = (Integer) Files.getAttribute(path, "unix:mode");
      return (mode & S_IFMT) == S_IFBLK;
    } catch (IOException | UnsupportedOperationException e) {
      return false;
    }
  }

  private OpenFile(Path path, FileChannel channel, boolean writable, NativeFile nativeFile, FileSettings settings) {
    this.path = path;
    this.channel = channel;
    this.writable = writable;
    this.nativeFile = nativeFile;
    if (nativeFile != null) {
      NativeFileOps.Result hole = nativeFile.seekHole(0);
      NativeFileOps.Result end = nativeFile.seekEnd();
      mayHaveHoles = hole.failed() || end.failed() || hole.value() < end.value();
    }
    boolean hinted = false;
    if (nativeFile != null && settings.fadvise() != Advice.NORMAL) {
      int error = nativeFile.advise(0, 0, settings.fadvise());
      hinted = error == 0;
      if (!hinted) {
        LOG.warn("file: {}: posix_fadvise({}) failed with errno {}", path, settings.fadvise(), error);
      }
    }
    this.nativeIo = hinted;
    boolean evict = settings.reduceMemoryPressure() && nativeFile != null;
    if (settings.reduceMemoryPressure() && nativeFile == null) {
      LOG.warn("file: {}: reduce-memory-pressure needs native file operations; the page cache is left alone", path);
    }
    this.dropReadPages = evict;
    this.writeEviction = evict && writable ? new WriteEviction(nativeFile) : null;
  }

  boolean writable() {
    return writable;
  }

  /** True when holes, zero ranges, extents and read-ahead hints are available. */
  boolean hasNativeOps() {
    return nativeFile != null;
  }

  /** The current size; seeking to the end also works for block devices, whose stat size is 0. */
  long size() throws IOException {
    if (nativeFile != null) {
      NativeFileOps.Result end = nativeFile.seekEnd();
      if (!end.failed()) {
        return end.value();
      }
    }
    return channel.size();
  }

  void read(ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    long at = offset;
    boolean viaNative = nativeIo && buffer.isDirect() && !buffer.isReadOnly();
    while (buffer.hasRemaining()) {
      long n = viaNative ? checked(nativeFile.pread(buffer, at), "read") : channel.read(buffer, at);
      if (n <= 0) {
        throw new NbdException(Errno.EIO, "file: unexpected end of file at offset " + at);
      }
      at += n;
    }
    if (dropReadPages) {
      nativeFile.advise(offset, length, Advice.DONTNEED);
    }
  }

  /**
   * The bytes at {@code offset} for the server to send as they are (sendfile): zeroes where the
   * whole range is a hole (looked for only in a file that {@link #mayHaveHoles}), else the
   * channel's region; or null where that would bypass a mode
   * that {@link #read} honours (an fadvise hint on the native descriptor, reduce-memory-pressure
   * dropping what was read), so the server reads through {@link #read}.
   */
  ReadData readData(long offset, int length) {
    if (nativeIo || dropReadPages) {
      return null;
    }
    if (mayHaveHoles) {
      NativeFileOps.Result data = nativeFile.seekData(offset);
      boolean hole = data.failed() ? data.errno() == NativeFileOps.ENXIO : data.value() >= offset + length;
      if (hole) {
        return new ReadData.Zeroes(length);
      }
    }
    return new ReadData.FileRegion(channel, offset, length);
  }

  void write(ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    long at = offset;
    boolean viaNative = nativeIo && buffer.isDirect() && !buffer.isReadOnly();
    while (buffer.hasRemaining()) {
      at += viaNative ? checked(nativeFile.pwrite(buffer, at), "write") : channel.write(buffer, at);
    }
    if (writeEviction != null) {
      writeEviction.written(offset, length);
    }
  }

  private long checked(NativeFileOps.Result result, String what) throws IOException {
    if (result.failed()) {
      throw new IOException("file: " + path + ": " + what + " failed with errno " + result.errno());
    }
    return result.value();
  }

  void flush() throws IOException {
    channel.force(true);
  }

  /** Punches a hole; false when the file system cannot (the range is then unchanged). */
  boolean punchHole(long offset, long length) {
    if (nativeFile == null || !punchHoleWorks.get()) {
      return false;
    }
    NativeFileOps.Result result = nativeFile.punchHole(offset, length);
    if (result.failed()) {
      giveUpIfUnsupported(punchHoleWorks, result, "punch hole");
      return false;
    }
    mayHaveHoles = true;
    return true;
  }

  /** Zeroes a range without writing; false when the file system cannot. */
  boolean zeroRange(long offset, long length) {
    if (nativeFile == null || !zeroRangeWorks.get()) {
      return false;
    }
    NativeFileOps.Result result = nativeFile.zeroRange(offset, length);
    if (result.failed()) {
      giveUpIfUnsupported(zeroRangeWorks, result, "zero range");
      return false;
    }
    mayHaveHoles = true;
    return true;
  }

  private void giveUpIfUnsupported(AtomicBoolean works, NativeFileOps.Result result, String what) {
    if (result.errno() == NativeFileOps.EOPNOTSUPP || result.errno() == NativeFileOps.ENOSYS) {
      if (works.getAndSet(false)) {
        LOG.info("file: {}: the file system cannot {}; falling back", path, what);
      }
    } else {
      LOG.debug("file: {}: {} failed with errno {}", path, what, result.errno());
    }
  }

  /** The first data offset at or after {@code offset}; only with {@link #hasNativeOps()}. */
  NativeFileOps.Result seekData(long offset) {
    return nativeFile.seekData(offset);
  }

  /** The first hole at or after {@code offset}; only with {@link #hasNativeOps()}. */
  NativeFileOps.Result seekHole(long offset) {
    return nativeFile.seekHole(offset);
  }

  /** Asks the kernel to read the range ahead; only with {@link #hasNativeOps()}. */
  void willNeed(long offset, long length) {
    int error = nativeFile.advise(offset, length, Advice.WILLNEED);
    if (error != 0) {
      LOG.debug("file: posix_fadvise(WILLNEED) failed with errno {}", error);
    }
  }

  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException e) {
      LOG.warn("file: closing {}: {}", path, e.getMessage());
    }
    if (nativeFile != null) {
      nativeFile.close();
    }
  }
}
