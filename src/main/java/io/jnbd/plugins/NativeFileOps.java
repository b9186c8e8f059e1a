package io.jnbd.plugins;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The Linux file calls Java has no API for: fallocate (punch holes, zero ranges), lseek
 * SEEK_DATA/SEEK_HOLE (find holes), posix_fadvise (access hints, dropping cached pages) and
 * sync_file_range (starting and waiting for writeback), bound with the foreign function API.
 *
 * <p>On other operating systems, or when the JVM denies native access ({@code
 * --illegal-native-access=deny}), {@link #unavailableReason()} says why and the file plugin falls
 * back to portable behaviour. The JVM warns on first use unless started with {@code
 * --enable-native-access=ALL-UNNAMED}, which the launcher and the tests pass.
 *
 * <p>These calls need a file descriptor, which FileChannel does not expose; rather than pry it
 * out of JDK internals (needs --add-opens) or guess it from /proc/self/fd, {@link #open} opens
 * the file a second time with open(2). Both descriptors refer to the same inode, so a hole
 * punched or a page dropped through one is seen through the other; only what the kernel keeps
 * per open file (the read-ahead state that posix_fadvise's access hints set) is not shared,
 * which is why {@link NativeFile#pread} and {@link NativeFile#pwrite} exist.
 */
final class NativeFileOps {
  private static final int O_RDONLY = 0;
  private static final int O_RDWR = 2;
  private static final int O_CLOEXEC = 0x80000;
  private static final int FALLOC_FL_KEEP_SIZE = 0x01;
  private static final int FALLOC_FL_PUNCH_HOLE = 0x02;
  private static final int FALLOC_FL_ZERO_RANGE = 0x10;
  private static final int SEEK_END = 2;
  private static final int SEEK_DATA = 3;
  private static final int SEEK_HOLE = 4;
  private static final int SYNC_FILE_RANGE_WAIT_BEFORE = 1;
  private static final int SYNC_FILE_RANGE_WRITE = 2;
  private static final int SYNC_FILE_RANGE_WAIT_AFTER = 4;
  static final int ENXIO = 6;
  static final int ENOSYS = 38;
  static final int EOPNOTSUPP = 95;

  /** posix_fadvise's advice values on Linux (all architectures but s390x, which jnbd does not target). */
  enum Advice {
    NORMAL(0),
    RANDOM(1),
    SEQUENTIAL(2),
    WILLNEED(3),
    DONTNEED(4);

    private final int value;

    Advice(int value) {
      this.value = value;
    }
  }

  private static final String UNAVAILABLE_REASON = probe();

  private NativeFileOps() {}

  private static String probe() {
    if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")) {
      return "only implemented for Linux";
    }
    try {
      Libc.bound();
      return null;
    } catch (ExceptionInInitializerError e) {
      // Any failure to bind means "not here", never a broken plugin.
      return e.getCause() != null ? e.getCause().toString() : e.toString();
    } catch (LinkageError | RuntimeException e) {
      return e.toString();
    }
  }

  static boolean available() {
    return UNAVAILABLE_REASON == null;
  }

  /** Why the native calls cannot be used, or null when they can. */
  static String unavailableReason() {
    return UNAVAILABLE_REASON;
  }

  /** A result of a native call: its return value, and errno when that is -1. */
  record Result(long value, int errno) {
    boolean failed() {
      return value == -1;
    }
  }

  /** Opens a descriptor for the file; only call when {@link #available()}. */
  static NativeFile open(Path path, boolean writable) throws IOException {
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment state = arena.allocate(Libc.CAPTURE_LAYOUT);
      int fd = (int) Libc.OPEN.invokeExact(state, arena.allocateFrom(path.toString()), flags, 0);
      if (fd < 0) {
        throw new IOException("open(" + path + ") failed with errno " + Libc.errno(state));
      }
      return new NativeFile(fd);
    } catch (IOException | RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw new IllegalStateException("open(" + path + ")", e);
    }
  }

  /** A file descriptor owned by this object; close it once. */
  static final class NativeFile implements AutoCloseable {
    private final int fd;

    private NativeFile(int fd) {
      this.fd = fd;
    }

    /** Deallocates the range; it then reads as zeroes. Fails with EOPNOTSUPP where unsupported. */
    Result punchHole(long offset, long length) {
      return fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    }

    /** Makes the range read as zeroes, keeping or allocating its blocks. */
    Result zeroRange(long offset, long length) {
      return fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
    }

    /** The first data offset at or after {@code offset}; ENXIO when only a hole follows. */
    Result seekData(long offset) {
      return lseek(offset, SEEK_DATA);
    }

    /** The first hole at or after {@code offset} (end of file counts as a hole). */
    Result seekHole(long offset) {
      return lseek(offset, SEEK_HOLE);
    }

    /** The size by seeking to the end, which also works for block devices. */
    Result seekEnd() {
      return lseek(0, SEEK_END);
    }

    /**
     * posix_fadvise; returns 0 or an error number. NORMAL, RANDOM and SEQUENTIAL set the
     * read-ahead of this descriptor only; WILLNEED and DONTNEED act on the file's cached pages.
     */
    int advise(long offset, long length, Advice advice) {
      try {
        return (int) Fadvise.HANDLE.invokeExact(fd, offset, length, advice.value);
      } catch (Throwable e) {
        throw unexpected("posix_fadvise", e);
      }
    }

    /** Starts writing back the range's dirty pages, without waiting. */
    Result startWriteback(long offset, long length) {
      return syncFileRange(offset, length, SYNC_FILE_RANGE_WRITE);
    }

    /** Writes back the range's dirty pages and waits until they are on disk (not a flush of metadata). */
    Result writeBack(long offset, long length) {
      return syncFileRange(offset, length,
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    }

    /** pread(2) into a direct buffer's remaining bytes; advances its position by the count read. */
    Result pread(ByteBuffer direct, long offset) {
      MemorySegment into = MemorySegment.ofBuffer(direct);
      return advancing(direct, withErrno(state -> (long) Io.PREAD.invokeExact(state, fd, into, into.byteSize(), offset)));
    }

    /** pwrite(2) of a direct buffer's remaining bytes; advances its position by the count written. */
    Result pwrite(ByteBuffer direct, long offset) {
      MemorySegment from = MemorySegment.ofBuffer(direct);
      return advancing(direct, withErrno(state -> (long) Io.PWRITE.invokeExact(state, fd, from, from.byteSize(), offset)));
    }

    /** The result of a read or write of the buffer, whose position it moves past the bytes moved. */
    private static Result advancing(ByteBuffer buffer, Result result) {
      if (result.value() > 0) {
        buffer.position(buffer.position() + (int) result.value());
      }
      return result;
    }

    @Override
    public void close() {
      try {
        // A failed close has no one to report to; durability is flush's job, and the channel's
        // fsync covers what was written through every descriptor of the file.
        int ignored = (int) Libc.CLOSE.invokeExact(fd);
      } catch (Throwable e) {
        throw unexpected("close", e);
      }
    }

    private Result fallocate(int mode, long offset, long length) {
      return withErrno(state -> (int) Fallocate.HANDLE.invokeExact(state, fd, mode, offset, length));
    }

    private Result lseek(long offset, int whence) {
      return withErrno(state -> (long) Libc.LSEEK.invokeExact(state, fd, offset, whence));
    }

    private Result syncFileRange(long offset, long length, int flags) {
      return withErrno(state -> (int) SyncFileRange.HANDLE.invokeExact(state, fd, offset, length, flags));
    }
  }

  private interface Call {
    long invoke(MemorySegment captureState) throws Throwable;
  }

  /**
   * Runs a call whose errno is captured. The capture space lives in a confined arena for that
   * call only, so calls from many threads never share native memory.
   */
  private static Result withErrno(Call call) {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment state = arena.allocate(Libc.CAPTURE_LAYOUT);
      long value = call.invoke(state);
      return new Result(value, value == -1 ? Libc.errno(state) : 0);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw unexpected("native call", e);
    }
  }

  private static IllegalStateException unexpected(String what, Throwable e) {
    return new IllegalStateException(what + " failed", e);
  }

  /**
   * The C functions every opened file uses, bound when this class is initialised, which fails
   * where they cannot be bound (the probe). The others are bound on first use, in holder classes
   * below: each binding generates code, and a file served without hints or trims never calls
   * them (binding all eight at start cost a file server 4.6 MiB more idle RSS and ~0.05 s more
   * CPU to start, A/B 4 runs alternated). Their symbols are looked up here, so that a libc
   * without one fails the probe rather than a request.
   */
  private static final class Libc {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
        CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    static final MethodHandle OPEN = bind("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
        CAPTURE_ERRNO, Linker.Option.firstVariadicArg(2));
    static final MethodHandle LSEEK = bind("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT), CAPTURE_ERRNO);
    static final MethodHandle CLOSE = bind("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

    static {
      for (String name : new String[] {"fallocate", "posix_fadvise", "sync_file_range", "pread", "pwrite"}) {
        symbol(name);
      }
    }

    private Libc() {}

    /** Does nothing; calling it initialises the class, which binds the common functions or fails. */
    static void bound() {}

    static int errno(MemorySegment captureState) {
      return (int) ERRNO.get(captureState, 0L);
    }

    static MethodHandle bind(String name, FunctionDescriptor descriptor, Linker.Option... options) {
      return LINKER.downcallHandle(symbol(name), descriptor, options);
    }

    private static MemorySegment symbol(String name) {
      return LINKER.defaultLookup().find(name).orElseThrow(() -> new UnsupportedOperationException("no C function " + name));
    }
  }

  /** Punching holes and zeroing ranges. */
  private static final class Fallocate {
    static final MethodHandle HANDLE =
        Libc.bind("fallocate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Libc.CAPTURE_ERRNO);
  }

  /** Access hints and dropping cached pages. */
  private static final class Fadvise {
    static final MethodHandle HANDLE =
        Libc.bind("posix_fadvise", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
  }

  /** Writeback under reduce-memory-pressure. */
  private static final class SyncFileRange {
    static final MethodHandle HANDLE = Libc.bind("sync_file_range",
        FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT), Libc.CAPTURE_ERRNO);
  }

  /** Reads and writes through the hinted descriptor (fadvise=). */
  private static final class Io {
    static final MethodHandle PREAD =
        Libc.bind("pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), Libc.CAPTURE_ERRNO);
    static final MethodHandle PWRITE =
        Libc.bind("pwrite", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), Libc.CAPTURE_ERRNO);
  }
}
