package io.jnbd.cli;

import io.jnbd.api.ConfigException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --selinux-label}: the SELinux label that sockets created by the calling thread get
 * (libselinux's setsockcreatecon_raw, bound through the foreign function API). Where
 * libselinux cannot be loaded or SELinux is off, the label is accepted and left unused, and
 * that is said once at debug level: virt-v2v passes the label whenever it runs under SELinux.
 */
final class SelinuxLabel {
  private static final Logger log = LoggerFactory.getLogger(SelinuxLabel.class);
  private static final Optional<Binding> BINDING = bind();

  private SelinuxLabel() {}

  private record Binding(MethodHandle isEnabled, MethodHandle setSocketCreateContext) {}

  /** An action that creates a socket. */
  interface SocketCreation<E extends Exception> {
    void run() throws E;
  }

  /** Whether labels can be applied at all: libselinux is there to call (for --dump-config). */
  static boolean supported() {
    return BINDING.isPresent();
  }

  /**
   * Runs {@code creation} with {@code label} as this thread's socket creation context, and
   * clears it afterwards so that later sockets (connections to origins, say) are not labelled.
   */
  static <E extends Exception> void apply(String label, SocketCreation<E> creation) throws E {
    if (BINDING.isEmpty() || !enabled(BINDING.get())) {
      log.debug("--selinux-label {} not applied: {}", label,
          BINDING.isEmpty() ? "libselinux cannot be loaded" : "SELinux is disabled");
      creation.run();
      return;
    }
    MethodHandle set = BINDING.get().setSocketCreateContext();
    try (Arena arena = Arena.ofConfined()) {
      if (call(set, arena.allocateFrom(label)) != 0) {
        throw new ConfigException("--selinux-label: cannot use the label '" + label + "'");
      }
      try {
        creation.run();
      } finally {
        call(set, MemorySegment.NULL);
      }
    }
  }

  private static boolean enabled(Binding binding) {
    try {
      return (int) binding.isEnabled().invokeExact() == 1;
    } catch (Throwable e) {
      throw new IllegalStateException("is_selinux_enabled failed", e);
    }
  }

  private static int call(MethodHandle set, MemorySegment label) {
    try {
      return (int) set.invokeExact(label);
    } catch (Throwable e) {
      throw new IllegalStateException("setsockcreatecon_raw failed", e);
    }
  }

  private static Optional<Binding> bind() {
    try {
      // The library lives as long as the JVM: its functions are called until exit.
      SymbolLookup library = SymbolLookup.libraryLookup("libselinux.so.1", Arena.global());
      Linker linker = Linker.nativeLinker();
      MethodHandle isEnabled = linker.downcallHandle(library.findOrThrow("is_selinux_enabled"),
          FunctionDescriptor.of(ValueLayout.JAVA_INT));
      MethodHandle set = linker.downcallHandle(library.findOrThrow("setsockcreatecon_raw"),
          FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
      return Optional.of(new Binding(isEnabled, set));
    } catch (RuntimeException | LinkageError e) {
      return Optional.empty();
    }
  }
}
