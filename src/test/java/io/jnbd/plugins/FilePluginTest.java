package io.jnbd.plugins;

import static io.jnbd.plugins.Plugins.configured;
import static io.jnbd.plugins.Plugins.map;
import static io.jnbd.plugins.Plugins.read;
import static io.jnbd.plugins.Plugins.write;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FilePluginTest {
  private static final int MIB = 1 << 20;
  @TempDir Path dir;
  private Plugin plugin;

  @AfterEach
  void unload() {
    if (plugin != null) {
      plugin.unload();
    }
  }

  private Path fileWithData(int size) throws Exception {
    byte[] bytes = new byte[size];
    new Random(42).nextBytes(bytes);
    Path file = dir.resolve("disk.img");
    Files.write(file, bytes);
    return file;
  }

  @Test
  void readsAndWritesThroughToTheFile() throws Exception {
    Path file = fileWithData(MIB);
    byte[] original = Files.readAllBytes(file);
    plugin = configured("file", "file=" + file);
    try (Export export = plugin.open(false, "")) {
      assertThat(export.size()).isEqualTo(MIB);
      assertThat(read(export, 12345, 1000)).isEqualTo(Arrays.copyOfRange(original, 12345, 13345));
      write(export, 7, new byte[] {1, 2, 3});
      export.flush();
      assertThat(Arrays.copyOfRange(Files.readAllBytes(file), 7, 10)).containsExactly(1, 2, 3);
      assertThat(export.canWrite()).isTrue();
      assertThat(export.canFlush()).isTrue();
      assertThat(export.canMultiConn()).isTrue();
    }
  }

  @Test
  void readPastEndOfAShrunkenFileIsEio() throws Exception {
    Path file = fileWithData(8192);
    plugin = configured("file", "file=" + file);
    try (Export export = plugin.open(false, "")) {
      try (var channel = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.WRITE)) {
        channel.truncate(4096);
      }
      assertThatThrownBy(() -> read(export, 4000, 1000))
          .isInstanceOf(NbdException.class)
          .satisfies(e -> assertThat(((NbdException) e).errno()).isEqualTo(Errno.EIO));
    }
  }

  @Test
  void trimAndZeroPunchHolesThatExtentsReport() throws Exception {
    assertThat(NativeFileOps.available()).as(NativeFileOps::unavailableReason).isTrue();
    Path file = fileWithData(4 * MIB);
    plugin = configured("file", "file=" + file);
    try (Export export = plugin.open(false, "")) {
      assertThat(export.canTrim()).isTrue();
      assertThat(export.canZero()).isEqualTo(Support.NATIVE);
      assertThat(export.canExtents()).isTrue();
      assertThat(export.canCache()).isEqualTo(Support.NATIVE);
      assertThat(map(export, 0, 4 * MIB)).isEqualTo("[0:" + 4 * MIB + "]");
      long blocksBefore = allocatedBlocks(file);

      export.trim(MIB, MIB, 0);
      export.zero(3 * MIB, MIB, Flags.MAY_TRIM);
      export.zero(100, 50, 0); // no hole allowed: zeroed in place
      export.cache(0, MIB);

      assertThat(map(export, 0, 4 * MIB))
          .isEqualTo("[0:" + MIB + ", 3:" + MIB + ", 0:" + MIB + ", 3:" + MIB + "]");
      assertThat(read(export, MIB, MIB)).containsOnly(0);
      assertThat(read(export, 3 * MIB, MIB)).containsOnly(0);
      assertThat(read(export, 100, 50)).containsOnly(0);
      assertThat(read(export, 150, 1)).isNotEqualTo(new byte[1]);
      assertThat(allocatedBlocks(file)).isLessThan(blocksBefore);
      assertThat(Files.size(file)).isEqualTo(4 * MIB);
    }
  }

  @Test
  void extentsOfASparseFileShowItsHoles() throws Exception {
    assertThat(NativeFileOps.available()).as(NativeFileOps::unavailableReason).isTrue();
    Path file = dir.resolve("sparse.img");
    try (var sparse = new java.io.RandomAccessFile(file.toFile(), "rw")) {
      sparse.setLength(4 * MIB);
      sparse.seek(2 * MIB);
      sparse.write(1);
    }
    plugin = configured("file", "file=" + file);
    try (Export export = plugin.open(true, "")) {
      assertThat(export.size()).isEqualTo(4 * MIB);
      String extents = map(export, 0, 4 * MIB);
      assertThat(extents).startsWith("[3:").contains(", 0:").endsWith("]");
      // The data block lies around 2 MiB, with holes on both sides.
      assertThat(map(export, 0, MIB)).isEqualTo("[3:" + MIB + "]");
      assertThat(map(export, 3 * MIB, MIB)).isEqualTo("[3:" + MIB + "]");
      assertThat(map(export, 2 * MIB, 1)).isEqualTo("[0:1]");
    }
  }

  @Test
  void withoutNativeOpsZeroIsLeftToTheServer() throws Exception {
    plugin = new FilePlugin(false);
    plugin.config("file", fileWithData(4096).toString());
    plugin.configComplete();
    try (Export export = plugin.open(false, "")) {
      assertThat(export.size()).isEqualTo(4096);
      assertThat(export.canZero()).isEqualTo(Support.EMULATE);
      assertThat(export.canTrim()).isFalse();
      assertThat(export.canExtents()).isFalse();
      assertThat(export.canCache()).isEqualTo(Support.EMULATE);
    }
  }

  @Test
  void aFileThatCannotBeWrittenIsServedReadOnly() throws Exception {
    Path file = fileWithData(4096);
    boolean root = "root".equals(System.getProperty("user.name"));
    if (root) {
      // Root ignores permissions, but not the immutable attribute. A file system without it
      // (tmpfs before Linux 6.0, some overlays) fails the test rather than skip it.
      Tools.require("chattr");
      Tools.Result immutable = Tools.run("chattr", "+i", file.toString());
      assertThat(immutable.exitCode()).as("chattr +i in %s (as root this test needs a file system with the"
          + " immutable attribute: point java.io.tmpdir at one): %s", dir, immutable.stderr()).isZero();
    } else {
      Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("r--r--r--"));
    }
    try {
      plugin = configured("file", "file=" + file);
      try (Export export = plugin.open(false, "")) {
        assertThat(export.canWrite()).isFalse();
        assertThat(read(export, 0, 16)).isEqualTo(Arrays.copyOf(Files.readAllBytes(file), 16));
      }
    } finally {
      if (root) {
        Tools.run("chattr", "-i", file.toString()).assertSuccess();
      }
    }
  }

  @Test
  void serverReadOnlyConnectionsCannotWrite() throws Exception {
    plugin = configured("file", "file=" + fileWithData(4096));
    try (Export export = plugin.open(true, "")) {
      assertThat(export.canWrite()).isFalse();
      assertThat(export.canTrim()).isFalse();
    }
  }

  @Test
  void configErrors() throws Exception {
    assertThatThrownBy(() -> configured("file")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("file: ").hasMessageContaining("required");
    assertThatThrownBy(() -> configured("file", "file=" + dir.resolve("missing.img")))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("file: ").hasMessageContaining("missing.img");
    assertThatThrownBy(() -> configured("file", "file=" + dir)).isInstanceOf(ConfigException.class)
        .hasMessageContaining("directory");
    assertThatThrownBy(() -> configured("file", "file=x", "cache=none")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("cache");
    assertThatThrownBy(() -> configured("file", "fadvise=often")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("file: fadvise");
    plugin = configured("file", "file=" + fileWithData(512), "fadvise=random");
  }

  @Test
  void aFifoOrCharacterDeviceIsRefusedNotServedAsAnEmptyDisk() throws Exception {
    Path fifo = dir.resolve("fifo");
    Tools.run("mkfifo", fifo.toString()).assertSuccess();
    assertThatThrownBy(() -> configured("file", "file=" + fifo)).isInstanceOf(ConfigException.class)
        .hasMessage("file: " + fifo + ": not a regular file or block device");
    assertThatThrownBy(() -> configured("file", "file=/dev/null")).isInstanceOf(ConfigException.class)
        .hasMessage("file: /dev/null: not a regular file or block device");
  }

  /** Allocated 512-byte blocks as stat(1) reports them. */
  private static long allocatedBlocks(Path file) {
    return Long.parseLong(Tools.run("stat", "-c", "%b", file.toString()).assertSuccess().stdout().trim());
  }
}
