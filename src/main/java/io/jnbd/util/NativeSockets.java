package io.jnbd.util;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

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
import java.nio.charset.StandardCharsets;

/**
 * The Linux socket calls for the address families the JDK does not open: AF_VSOCK streams
 * (--vsock) and AF_UNIX datagrams (syslog's /dev/log), bound with the foreign function API.
 * Every call returns its result or throws an {@link IOException} naming the call and the
 * system's message for errno; {@link NativeSocketException#errno()} tells callers that care
 * which error it was.
 */
public final class NativeSockets {
  public static final int AF_UNIX = 1;
  public static final int AF_VSOCK = 40;
  public static final int SOCK_STREAM = 1;
  public static final int SOCK_DGRAM = 2;
  /** Or'ed into a type: the socket does not block (accept, send and recv return -1 instead). */
  public static final int SOCK_NONBLOCK = 0x800;
  /** VMADDR_PORT_ANY: bind to a free port. */
  public static final int VMADDR_PORT_ANY = -1;
  /** VMADDR_CID_ANY: listen on every context id this machine has. */
  public static final int VMADDR_CID_ANY = -1;
  public static final int SHUT_RD = 0;
  public static final int SHUT_RDWR = 2;
  public static final short POLLIN = 1;
  public static final short POLLOUT = 4;
  public static final int EINTR = 4;
  public static final int EAGAIN = 11;
  public static final int ENOENT = 2;
  public static final int ECONNREFUSED = 111;
  /** MSG_DONTWAIT: this one call does not block. */
  public static final int MSG_DONTWAIT = 0x40;
  private static final int SOCK_CLOEXEC = 0x80000;
  /** A peer that went away gives EPIPE instead of SIGPIPE. */
  private static final int MSG_NOSIGNAL = 0x4000;
  private static final int O_CLOEXEC = 0x80000;
  private static final int SOCKADDR_UN_PATH = 108;
  private static final int SOCKADDR_STORAGE = 128;

  private NativeSockets() {}

  /** A failed call, with its errno. */
  public static final class NativeSocketException extends IOException {
    private final int errno;

    NativeSocketException(String message, int errno) {
      super(message);
      this.errno = errno;
    }

    public int errno() {
      return errno;
    }
  }

  /** A new socket of this family and type, close-on-exec. */
  public static int socket(int family, int type) throws IOException {
    return (int) call("socket", state -> (int) Libc.SOCKET.invokeExact(state, family, type | SOCK_CLOEXEC, 0));
  }

  /** Binds to an AF_VSOCK address. */
  public static void bindVsock(int fd, int cid, int port) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment address = vsockAddress(arena, cid, port);
      call("bind", state -> (int) Libc.BIND.invokeExact(state, fd, address, (int) address.byteSize()));
    }
  }

  /** Binds to an AF_UNIX path. */
  public static void bindUnix(int fd, String path) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment address = unixAddress(arena, path);
      call("bind", state -> (int) Libc.BIND.invokeExact(state, fd, address, (int) address.byteSize()));
    }
  }

  /** Connects to an AF_UNIX path (for a datagram socket: sets where send() goes). */
  public static void connectUnix(int fd, String path) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment address = unixAddress(arena, path);
      call("connect", state -> (int) Libc.CONNECT.invokeExact(state, fd, address, (int) address.byteSize()));
    }
  }

  public static void listen(int fd, int backlog) throws IOException {
    call("listen", state -> (int) Libc.LISTEN.invokeExact(state, fd, backlog));
  }

  /**
   * Accepts a connection; the new descriptor is close-on-exec and blocking. On a non-blocking
   * socket, -1 when no client is waiting. When the client is an AF_VSOCK peer and {@code
   * vsockPeer} is not null, its context id and port are put in {@code vsockPeer[0]} and {@code [1]}.
   */
  public static int accept(int fd, int[] vsockPeer) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment address = arena.allocate(SOCKADDR_STORAGE);
      MemorySegment length = arena.allocateFrom(JAVA_INT, SOCKADDR_STORAGE);
      int client = (int) call("accept", true, state -> (int) Libc.ACCEPT4.invokeExact(state, fd, address, length,
          SOCK_CLOEXEC));
      if (client >= 0 && vsockPeer != null && address.get(JAVA_SHORT, 0) == AF_VSOCK) {
        vsockPeer[0] = address.get(JAVA_INT, 8);
        vsockPeer[1] = address.get(JAVA_INT, 4);
      }
      return client;
    }
  }

  /** The port an AF_VSOCK socket is bound to (after binding to port VMADDR_PORT_ANY, say). */
  public static int vsockPort(int fd) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment address = arena.allocate(Libc.SOCKADDR_VM);
      MemorySegment length = arena.allocateFrom(JAVA_INT, (int) address.byteSize());
      call("getsockname", state -> (int) Libc.GETSOCKNAME.invokeExact(state, fd, address, length));
      return address.get(JAVA_INT, 4);
    }
  }

  /**
   * Sends from {@code src}'s position to its limit and advances it by what was sent; flags may
   * add {@link #MSG_DONTWAIT}, and then -1 means the call would have blocked.
   */
  public static int send(int fd, ByteBuffer src, int flags) throws IOException {
    MemorySegment from = segment(src);
    long sent = call("send", true, state -> (long) Libc.SEND.invokeExact(state, fd, from, from.byteSize(),
        flags | MSG_NOSIGNAL));
    if (sent > 0) {
      src.position(src.position() + (int) sent);
    }
    return (int) sent;
  }

  /**
   * Receives into {@code dst} from its position and advances it; 0 bytes at end of stream (-1 as
   * the JDK's channels say it is the caller's to translate), and -1 when {@link #MSG_DONTWAIT}
   * was given and nothing is there.
   */
  public static int recv(int fd, ByteBuffer dst, int flags) throws IOException {
    MemorySegment into = segment(dst);
    long received = call("recv", true, state -> (long) Libc.RECV.invokeExact(state, fd, into, into.byteSize(), flags));
    if (received > 0) {
      dst.position(dst.position() + (int) received);
    }
    return (int) received;
  }

  /** Waits until fd has one of {@code events}, or {@code wake} becomes readable; returns fd's events. */
  public static int poll(int fd, short events, int wake) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment fds = arena.allocate(Libc.POLLFD, 2);
      fds.set(JAVA_INT, 0, fd);
      fds.set(JAVA_SHORT, 4, events);
      fds.set(JAVA_INT, 8, wake);
      fds.set(JAVA_SHORT, 12, POLLIN);
      while (true) {
        try {
          call("poll", state -> (int) Libc.POLL.invokeExact(state, fds, 2L, -1));
          return fds.get(JAVA_SHORT, 6);
        } catch (NativeSocketException e) {
          if (e.errno() != EINTR) {
            throw e;
          }
        }
      }
    }
  }

  /** A pipe, close-on-exec: {read end, write end}. */
  public static int[] pipe() throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment ends = arena.allocate(JAVA_INT, 2);
      call("pipe2", state -> (int) Libc.PIPE2.invokeExact(state, ends, O_CLOEXEC));
      return new int[] {ends.getAtIndex(JAVA_INT, 0), ends.getAtIndex(JAVA_INT, 1)};
    }
  }

  /** Writes one byte to a pipe, to wake a {@link #poll}. */
  public static void wake(int pipeWriteEnd) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment one = arena.allocate(1);
      call("write", state -> (long) Libc.WRITE.invokeExact(state, pipeWriteEnd, one, 1L));
    }
  }

  public static void shutdown(int fd, int how) throws IOException {
    call("shutdown", state -> (int) Libc.SHUTDOWN.invokeExact(state, fd, how));
  }

  /** Closes fd, ignoring failure: the descriptor is gone either way on Linux. */
  public static void close(int fd) {
    try {
      int ignored = (int) Libc.CLOSE.invokeExact(fd);
    } catch (Throwable e) {
      throw new IllegalStateException("close", e);
    }
  }

  /** Whether the calls can be made here: Linux, with native access allowed; otherwise why not. */
  public static String unavailableReason() {
    try {
      Libc.SOCKET.type();
      return null;
    } catch (ExceptionInInitializerError e) {
      return e.getCause() != null ? e.getCause().toString() : e.toString();
    } catch (LinkageError | RuntimeException e) {
      return e.toString();
    }
  }

  private static MemorySegment vsockAddress(Arena arena, int cid, int port) {
    MemorySegment address = arena.allocate(Libc.SOCKADDR_VM);
    address.set(JAVA_SHORT, 0, (short) AF_VSOCK);
    address.set(JAVA_INT, 4, port);
    address.set(JAVA_INT, 8, cid);
    return address;
  }

  private static MemorySegment unixAddress(Arena arena, String path) throws IOException {
    byte[] bytes = path.getBytes(StandardCharsets.UTF_8);
    if (bytes.length >= SOCKADDR_UN_PATH) {
      throw new IOException("socket path too long (" + bytes.length + " bytes, at most " + (SOCKADDR_UN_PATH - 1) + "): "
          + path);
    }
    MemorySegment address = arena.allocate(2 + SOCKADDR_UN_PATH);
    address.set(JAVA_SHORT, 0, (short) AF_UNIX);
    MemorySegment.copy(bytes, 0, address, JAVA_BYTE, 2, bytes.length);
    return address;
  }

  /** The buffer's bytes from position to limit; heap buffers are copied by the callers that need it. */
  private static MemorySegment segment(ByteBuffer buffer) {
    if (!buffer.isDirect()) {
      throw new IllegalArgumentException("native socket calls need a direct buffer");
    }
    return MemorySegment.ofBuffer(buffer);
  }

  private interface Call {
    long invoke(MemorySegment state) throws Throwable;
  }

  private static long call(String name, Call call) throws IOException {
    return call(name, false, call);
  }

  /** Runs a call; -1 with EAGAIN is returned as -1 when {@code wouldBlockOk}, any other -1 throws. */
  private static long call(String name, boolean wouldBlockOk, Call call) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment state = arena.allocate(Libc.CAPTURE_LAYOUT);
      long result = call.invoke(state);
      if (result != -1) {
        return result;
      }
      int errno = (int) Libc.ERRNO.get(state, 0L);
      if (wouldBlockOk && errno == EAGAIN) {
        return -1;
      }
      throw new NativeSocketException(name + ": " + Libc.message(errno), errno);
    } catch (IOException | RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw new IllegalStateException(name, e);
    }
  }

  /** The bindings, made on first use so that a JVM without native access fails only there. */
  private static final class Libc {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    /** struct sockaddr_vm: family, reserved, port, cid, flags, zero[3]. */
    static final StructLayout SOCKADDR_VM = MemoryLayout.structLayout(JAVA_SHORT, JAVA_SHORT, JAVA_INT, JAVA_INT,
        MemoryLayout.sequenceLayout(4, JAVA_BYTE));
    /** struct pollfd: fd, events, revents. */
    static final StructLayout POLLFD = MemoryLayout.structLayout(JAVA_INT, JAVA_SHORT, JAVA_SHORT);

    static final MethodHandle SOCKET = bind("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    static final MethodHandle BIND = bind("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    static final MethodHandle CONNECT = bind("connect", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    static final MethodHandle LISTEN = bind("listen", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    static final MethodHandle ACCEPT4 =
        bind("accept4", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    static final MethodHandle GETSOCKNAME =
        bind("getsockname", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    static final MethodHandle SEND =
        bind("send", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    static final MethodHandle RECV =
        bind("recv", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    static final MethodHandle POLL = bind("poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    static final MethodHandle PIPE2 = bind("pipe2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    static final MethodHandle WRITE = bind("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    static final MethodHandle SHUTDOWN = bind("shutdown", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    static final MethodHandle CLOSE = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("close"),
        FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle STRERROR = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("strerror"),
        FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private static MethodHandle bind(String name, FunctionDescriptor descriptor) {
      return LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow(name), descriptor, CAPTURE_ERRNO);
    }

    /** strerror's text; it is not thread-safe in theory, but glibc's returns static strings for known errors. */
    static String message(int errno) {
      try {
        MemorySegment text = (MemorySegment) STRERROR.invokeExact(errno);
        return text.reinterpret(256).getString(0);
      } catch (Throwable e) {
        return "errno " + errno;
      }
    }
  }
}
