package io.jnbd.cli;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.channels.Channel;
import java.nio.channels.ServerSocketChannel;
import java.util.Map;

/**
 * systemd's socket activation, as nbdkit supports it: when {@code LISTEN_PID} is this process
 * and {@code LISTEN_FDS} is set, the listening socket is descriptor 3, opened by whoever started
 * jnbd (systemd, systemd-socket-activate), and jnbd serves on it instead of opening its own.
 *
 * <p>Java cannot adopt a raw descriptor, except the one it inherited as stdin: {@link
 * System#inheritedChannel()} turns a listening socket (TCP or Unix) on descriptor 0 into a
 * {@link ServerSocketChannel}. So descriptor 3 is moved onto 0 (dup2, through the foreign
 * function API) once the layers are configured (a secret read from stdin is read by then). That
 * is also why only one socket is taken: the JDK adopts descriptor 0 once.
 */
final class SocketActivation {
  /** The first passed descriptor, SD_LISTEN_FDS_START. */
  private static final int FIRST_DESCRIPTOR = 3;

  private SocketActivation() {}

  /** How many sockets were passed to this process: 0 when jnbd was not socket-activated. */
  static int passedSockets(Map<String, String> environment, long pid) {
    String listenPid = environment.get("LISTEN_PID");
    String listenFds = environment.get("LISTEN_FDS");
    if (listenPid == null || listenFds == null || !listenPid.strip().equals(Long.toString(pid))) {
      return 0;
    }
    try {
      return Math.max(0, Integer.parseInt(listenFds.strip()));
    } catch (NumberFormatException e) {
      throw new ConfigException("socket activation: LISTEN_FDS is not a number: '" + listenFds + "'");
    }
  }

  /** Refuses what nbdkit refuses with socket activation: options that choose another socket, or none. */
  static void checkOptions(Options options) {
    String conflict = options.unix != null ? "-U" : options.port != null ? "-p" : options.ipaddr != null ? "-i"
        : options.vsock ? "--vsock" : options.single ? "-s" : options.run != null ? "--run" : null;
    if (conflict != null) {
      throw new ConfigException("cannot use socket activation with " + conflict);
    }
  }

  /** The passed listening socket, adopted as a channel; descriptor 3 is closed. */
  static ServerSocketChannel takeListener(int passed) throws IOException {
    if (passed != 1) {
      throw new ConfigException("socket activation: " + passed + " sockets were passed (LISTEN_FDS); jnbd takes one");
    }
    Linker linker = Linker.nativeLinker();
    MethodHandle dup2 = linker.downcallHandle(linker.defaultLookup().findOrThrow("dup2"),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    MethodHandle close = linker.downcallHandle(linker.defaultLookup().findOrThrow("close"),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    try {
      if ((int) dup2.invokeExact(FIRST_DESCRIPTOR, 0) != 0) {
        throw new IOException("socket activation: descriptor " + FIRST_DESCRIPTOR + " is not open");
      }
      int ignored = (int) close.invokeExact(FIRST_DESCRIPTOR);
    } catch (IOException e) {
      throw e;
    } catch (Throwable e) {
      throw new IOException("socket activation: cannot move descriptor " + FIRST_DESCRIPTOR + ": " + e, e);
    }
    Channel inherited = System.inheritedChannel();
    if (inherited instanceof ServerSocketChannel listener) {
      return listener;
    }
    throw new IOException("socket activation: descriptor " + FIRST_DESCRIPTOR + " is not a listening socket"
        + (inherited == null ? "" : " (" + inherited.getClass().getSimpleName() + ")"));
  }
}
