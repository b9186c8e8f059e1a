package io.jnbd.plugins;

import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Array;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * The Linux file calls Java has no API for: fallocate (punch holes, zero ranges), lseek
 * SEEK_DATA/SEEK_HOLE (find holes) and posix_fadvise (read-ahead hints).
 *
 * <p>They are bound with the foreign function API, which is final only from JDK 22. jnbd is
 * compiled for release 21, where that API is a preview and cannot be named without
 * --enable-preview, so it is reached through reflection and method handles only. On JDK 21, on
 * other operating systems, or when native access is denied, {@link #unavailableReason()} says
 * why and the file plugin falls back to portable behaviour. On JDK 24+ the JVM prints a warning
 * on first use unless started with {@code --enable-native-access=ALL-UNNAMED}.
 *
 * <p>These calls need a file descriptor, which FileChannel does not expose; rather than pry it
 * out of JDK internals (needs --add-opens) or guess it from /proc/self/fd, {@link #open} opens
 * the file a second time with open(2). Both descriptors refer to the same inode, so a hole
 * punched through one is seen through the other, and this class owns the lifetime of its own.
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
  private static final int POSIX_FADV_WILLNEED = 3;
  static final int ENXIO = 6;
  static final int ENOSYS = 38;
  static final int EOPNOTSUPP = 95;

  private static final Binding BINDING;
  private static final String UNAVAILABLE_REASON;

  static {
    Binding binding = null;
    String reason = null;
    try {
      binding = bind();
    } catch (Throwable e) { // Any failure to bind means "not here", never a broken plugin.
      reason = e instanceof UnsupportedOperationException ? e.getMessage() : e.toString();
    }
    BINDING = binding;
    UNAVAILABLE_REASON = reason;
  }

  private NativeFileOps() {}

  static boolean available() {
    return BINDING != null;
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
    int fd = BINDING.open(path.toString(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    return new NativeFile(fd);
  }

  /** A file descriptor owned by this object; close it once. */
  static final class NativeFile implements AutoCloseable {
    private final int fd;

    private NativeFile(int fd) {
      this.fd = fd;
    }

    /** Deallocates the range; it then reads as zeroes. Fails with EOPNOTSUPP where unsupported. */
    Result punchHole(long offset, long length) {
      return BINDING.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    }

    /** Makes the range read as zeroes, keeping or allocating its blocks. */
    Result zeroRange(long offset, long length) {
      return BINDING.fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
    }

    /** The first data offset at or after {@code offset}; ENXIO when only a hole follows. */
    Result seekData(long offset) {
      return BINDING.lseek(fd, offset, SEEK_DATA);
    }

    /** The first hole at or after {@code offset} (end of file counts as a hole). */
    Result seekHole(long offset) {
      return BINDING.lseek(fd, offset, SEEK_HOLE);
    }

    /** The size by seeking to the end, which also works for block devices. */
    Result seekEnd() {
      return BINDING.lseek(fd, 0, SEEK_END);
    }

    /** Asks the kernel to read the range ahead; returns 0 or an error number. */
    int willNeed(long offset, long length) {
      return BINDING.fadvise(fd, offset, length, POSIX_FADV_WILLNEED);
    }

    @Override
    public void close() {
      BINDING.close(fd);
    }
  }

  /**
   * The bound functions. Each call allocates errno capture space in a confined arena that lives
   * for that call only, so calls from many threads never share native memory.
   */
  private record Binding(
      MethodHandle arenaOfConfined,
      MethodHandle arenaAllocateLayout,
      MethodHandle arenaAllocateString,
      MethodHandle arenaClose,
      Object captureLayout,
      MethodHandle readErrno,
      MethodHandle open,
      MethodHandle fallocate,
      MethodHandle lseek,
      MethodHandle fadvise,
      MethodHandle close) {

    int open(String path, int flags) throws IOException {
      Object arena = call(() -> arenaOfConfined.invoke());
      try {
        Object state = call(() -> arenaAllocateLayout.invoke(arena, captureLayout));
        Object cPath = call(() -> arenaAllocateString.invoke(arena, path));
        int fd = (int) call(() -> open.invoke(state, cPath, flags, 0));
        if (fd < 0) {
          int errno = (int) call(() -> readErrno.invoke(state));
          throw new IOException("open(" + path + ") failed with errno " + errno);
        }
        return fd;
      } finally {
        call(() -> arenaClose.invoke(arena));
      }
    }

    Result fallocate(int fd, int mode, long offset, long length) {
      return withErrno(state -> (int) fallocate.invoke(state, fd, mode, offset, length));
    }

    Result lseek(int fd, long offset, int whence) {
      return withErrno(state -> (long) lseek.invoke(state, fd, offset, whence));
    }

    int fadvise(int fd, long offset, long length, int advice) {
      return (int) call(() -> fadvise.invoke(fd, offset, length, advice));
    }

    void close(int fd) {
      call(() -> close.invoke(fd));
    }

    private Result withErrno(NativeCall function) {
      Object arena = call(() -> arenaOfConfined.invoke());
      try {
        Object state = call(() -> arenaAllocateLayout.invoke(arena, captureLayout));
        long value = (long) call(() -> function.invoke(state));
        int errno = value == -1 ? (int) call(() -> readErrno.invoke(state)) : 0;
        return new Result(value, errno);
      } finally {
        call(() -> arenaClose.invoke(arena));
      }
    }
  }

  private interface NativeCall {
    long invoke(Object captureState) throws Throwable;
  }

  private interface Invocation {
    Object invoke() throws Throwable;
  }

  private static Object call(Invocation invocation) {
    try {
      return invocation.invoke();
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw new IllegalStateException("native call failed", e);
    }
  }

  private static Binding bind() throws ReflectiveOperationException {
    if (Runtime.version().feature() < 22) {
      throw new UnsupportedOperationException("needs JDK 22 or newer (this is " + Runtime.version() + ")");
    }
    if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")) {
      throw new UnsupportedOperationException("only implemented for Linux");
    }
    MethodHandles.Lookup lookup = MethodHandles.publicLookup();
    Class<?> linkerClass = Class.forName("java.lang.foreign.Linker");
    Class<?> optionClass = Class.forName("java.lang.foreign.Linker$Option");
    Class<?> layoutClass = Class.forName("java.lang.foreign.MemoryLayout");
    Class<?> pathElementClass = Class.forName("java.lang.foreign.MemoryLayout$PathElement");
    Class<?> valueLayoutClass = Class.forName("java.lang.foreign.ValueLayout");
    Class<?> intLayoutClass = Class.forName("java.lang.foreign.ValueLayout$OfInt");
    Class<?> segmentClass = Class.forName("java.lang.foreign.MemorySegment");
    Class<?> allocatorClass = Class.forName("java.lang.foreign.SegmentAllocator");
    Class<?> arenaClass = Class.forName("java.lang.foreign.Arena");
    Class<?> descriptorClass = Class.forName("java.lang.foreign.FunctionDescriptor");
    Class<?> symbolLookupClass = Class.forName("java.lang.foreign.SymbolLookup");

    Object linker = linkerClass.getMethod("nativeLinker").invoke(null);
    Object symbols = linkerClass.getMethod("defaultLookup").invoke(linker);
    Object jint = valueLayoutClass.getField("JAVA_INT").get(null);
    Object jlong = valueLayoutClass.getField("JAVA_LONG").get(null);
    Object address = valueLayoutClass.getField("ADDRESS").get(null);

    Object captureErrno = optionClass.getMethod("captureCallState", String[].class)
        .invoke(null, (Object) new String[] {"errno"});
    Object captureLayout = optionClass.getMethod("captureStateLayout").invoke(null);
    Object errnoPath = Array.newInstance(pathElementClass, 1);
    Array.set(errnoPath, 0, pathElementClass.getMethod("groupElement", String.class).invoke(null, "errno"));
    long errnoOffset = (long) layoutClass.getMethod("byteOffset", errnoPath.getClass()).invoke(captureLayout, errnoPath);
    MethodHandle getInt = lookup.findVirtual(segmentClass, "get", MethodType.methodType(int.class, intLayoutClass, long.class));
    MethodHandle readErrno = MethodHandles.insertArguments(getInt, 1, jint, errnoOffset)
        .asType(MethodType.methodType(int.class, Object.class));

    Method find = symbolLookupClass.getMethod("find", String.class);
    Method downcall = linkerClass.getMethod("downcallHandle", segmentClass, descriptorClass, optionClass.arrayType());
    Method describe = descriptorClass.getMethod("of", layoutClass, layoutClass.arrayType());
    Downcalls downcalls = (name, options, result, arguments) -> {
      Object symbol = ((Optional<?>) find.invoke(symbols, name))
          .orElseThrow(() -> new UnsupportedOperationException("no C function " + name));
      Object layouts = Array.newInstance(layoutClass, arguments.length);
      for (int i = 0; i < arguments.length; i++) {
        Array.set(layouts, i, arguments[i]);
      }
      Object optionArray = Array.newInstance(optionClass, options.length);
      for (int i = 0; i < options.length; i++) {
        Array.set(optionArray, i, options[i]);
      }
      return (MethodHandle) downcall.invoke(linker, symbol, describe.invoke(null, result, layouts), optionArray);
    };
    Object firstVariadic = optionClass.getMethod("firstVariadicArg", int.class).invoke(null, 2);

    MethodHandle open = downcalls.bind("open", new Object[] {captureErrno, firstVariadic}, jint, address, jint, jint)
        .asType(MethodType.methodType(int.class, Object.class, Object.class, int.class, int.class));
    MethodHandle fallocate = downcalls.bind("fallocate", new Object[] {captureErrno}, jint, jint, jint, jlong, jlong)
        .asType(MethodType.methodType(int.class, Object.class, int.class, int.class, long.class, long.class));
    MethodHandle lseek = downcalls.bind("lseek", new Object[] {captureErrno}, jlong, jint, jlong, jint)
        .asType(MethodType.methodType(long.class, Object.class, int.class, long.class, int.class));
    MethodHandle fadvise = downcalls.bind("posix_fadvise", new Object[0], jint, jint, jlong, jlong, jint);
    MethodHandle close = downcalls.bind("close", new Object[0], jint, jint);

    MethodHandle ofConfined = lookup.findStatic(arenaClass, "ofConfined", MethodType.methodType(arenaClass))
        .asType(MethodType.methodType(Object.class));
    MethodHandle allocateLayout = lookup.findVirtual(allocatorClass, "allocate", MethodType.methodType(segmentClass, layoutClass))
        .asType(MethodType.methodType(Object.class, Object.class, Object.class));
    MethodHandle allocateString = lookup.findVirtual(allocatorClass, "allocateFrom", MethodType.methodType(segmentClass, String.class))
        .asType(MethodType.methodType(Object.class, Object.class, String.class));
    MethodHandle closeArena = lookup.findVirtual(arenaClass, "close", MethodType.methodType(void.class))
        .asType(MethodType.methodType(void.class, Object.class));
    return new Binding(ofConfined, allocateLayout, allocateString, closeArena, captureLayout, readErrno,
        open, fallocate, lseek, fadvise, close);
  }

  private interface Downcalls {
    MethodHandle bind(String name, Object[] options, Object result, Object... arguments)
        throws IllegalAccessException, InvocationTargetException;
  }
}
