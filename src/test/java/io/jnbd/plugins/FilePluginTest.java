package io.jnbd.plugins;

import static io.jnbd.plugins.Plugins.configured;
import static io.jnbd.plugins.Plugins.map;
import static io.jnbd.plugins.Plugins.write;
import static io.jnbd.testing.Exports.read;
import static io.jnbd.testing.TestData.randomBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import io.jnbd.cli.Main;
import io.jnbd.testing.ProcessFigures;
import io.jnbd.testing.Tools;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FilePluginTest {
  private static final int MIB = 1 << 20;
  private static final int O_RDONLY = 0;
  private static final int O_RDWR = 2;
  private static final int O_ACCMODE = 3;
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
    assertThatThrownBy(() -> configured("file", "file=x", "cache=sometimes")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("file: cache");
    assertThatThrownBy(() -> configured("file", "file=x", "reduce-memory-pressure=maybe")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("file: reduce-memory-pressure");
    assertThatThrownBy(() -> configured("file", "file=" + fileWithData(512), "dir=" + dir)).isInstanceOf(ConfigException.class)
        .hasMessage("file: file= and dir= cannot be used together");
    assertThatThrownBy(() -> configured("file", "dir=" + dir.resolve("missing"))).isInstanceOf(ConfigException.class)
        .hasMessage("file: dir=" + dir.resolve("missing") + ": no such directory");
    assertThatThrownBy(() -> configured("file", "dir=" + fileWithData(512))).isInstanceOf(ConfigException.class)
        .hasMessage("file: dir=" + dir.resolve("disk.img") + ": not a directory");
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

  /** virt-v2v upstream greps the help for reduce-memory-pressure=, then cache=, and aborts on neither. */
  @Test
  void helpAnswersVirtV2vsParameterProbes() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    int status = Main.run(new String[] {"file", "--help"}, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(new ByteArrayOutputStream()));
    assertThat(status).isZero();
    String help = out.toString(StandardCharsets.UTF_8);
    assertThat(help).contains("reduce-memory-pressure=").contains("cache=").contains("dir=").contains("fadvise=");
  }

  @Test
  void dirServesEachRegularFileAndBlockDeviceAsAnExportNamedByItsFileName() throws Exception {
    Path disks = Files.createDirectory(dir.resolve("disks"));
    byte[] disk0 = randomBytes(8192, 1);
    Files.write(disks.resolve("disk0"), disk0);
    Files.write(disks.resolve("disk1"), randomBytes(4096, 2));
    Files.createDirectory(disks.resolve("sub"));
    Files.createSymbolicLink(disks.resolve("link0"), Path.of("disk0"));
    Files.createSymbolicLink(disks.resolve("dangling"), Path.of("/nonexistent"));
    Tools.run("mkfifo", disks.resolve("fifo").toString()).assertSuccess();
    plugin = configured("file", "dir=" + disks);

    assertThat(plugin.listExports(false)).extracting(ExportDescription::name).containsExactly("disk0", "disk1", "link0");
    try (Export export = plugin.open(false, "disk0")) {
      assertThat(export.size()).isEqualTo(8192);
      assertThat(read(export, 100, 50)).isEqualTo(Arrays.copyOfRange(disk0, 100, 150));
      write(export, 10, new byte[] {7, 8, 9});
      export.flush();
      assertThat(accessModesOfDescriptorsOn(disks.resolve("disk0"))).isNotEmpty().containsOnly(O_RDWR);
    }
    assertThat(Arrays.copyOfRange(Files.readAllBytes(disks.resolve("disk0")), 10, 13)).containsExactly(7, 8, 9);
    try (Export link = plugin.open(true, "link0")) {
      assertThat(read(link, 10, 3)).containsExactly(7, 8, 9);
      assertThat(link.canWrite()).isFalse();
      // A connection that only reads (-r, or below cow) opens its file read-only.
      assertThat(accessModesOfDescriptorsOn(disks.resolve("disk0"))).isNotEmpty().containsOnly(O_RDONLY);
    }
    // The directory is read at each listing, and a name opens whatever is there now.
    Files.write(disks.resolve("disk2"), new byte[512]);
    assertThat(plugin.listExports(false)).extracting(ExportDescription::name).contains("disk2");
    try (Export late = plugin.open(false, "disk2")) {
      assertThat(late.size()).isEqualTo(512);
    }
  }

  @Test
  void dirRefusesTheDefaultExportPathsAndWhatIsNotAFile() throws Exception {
    Path disks = Files.createDirectory(dir.resolve("disks"));
    Files.write(disks.resolve("disk0"), new byte[512]);
    Files.createDirectory(disks.resolve("sub"));
    Tools.run("mkfifo", disks.resolve("fifo").toString()).assertSuccess();
    Files.write(dir.resolve("outside"), new byte[512]);
    plugin = configured("file", "dir=" + disks);
    assertThatThrownBy(() -> plugin.open(false, "")).isInstanceOf(NbdException.class)
        .hasMessageContaining("no default export");
    for (String name : new String[] {"../outside", "sub/x", "..", ".", "sub", "fifo", "missing", "nul\0l"}) {
      assertThatThrownBy(() -> plugin.open(false, name)).as(name).isInstanceOf(NbdException.class)
          .satisfies(e -> assertThat(((NbdException) e).errno()).isEqualTo(Errno.EINVAL));
    }
  }

  @Test
  void dirExportsCloseTheirFileWhenTheConnectionEnds() throws Exception {
    Path disks = Files.createDirectory(dir.resolve("disks"));
    Files.write(disks.resolve("disk0"), new byte[512]);
    plugin = configured("file", "dir=" + disks);
    plugin.open(false, "disk0").close();
    long before = ProcessFigures.measure("none").openFds();
    for (int i = 0; i < 20; i++) {
      plugin.open(false, "disk0").close();
    }
    assertThat(ProcessFigures.measure("none").openFds()).isEqualTo(before);
  }

  @Test
  void reduceMemoryPressureDropsReadAndWrittenPagesFromThePageCache() throws Exception {
    Tools.require("fincore");
    assertThat(NativeFileOps.available()).as(NativeFileOps::unavailableReason).isTrue();
    // Not under /tmp, which may be tmpfs, whose pages cannot be dropped.
    Path onDisk = Files.createTempDirectory(Path.of("target").toAbsolutePath(), "page-cache");
    try {
      // Whole 2 MiB requests: the kernel drops only cached folios wholly inside the range, and
      // file systems may cache a file in folios of up to 2 MiB.
      int chunk = 2 * MIB;
      int chunks = 16;
      for (String mode : new String[] {"cache=default", "cache=none", "reduce-memory-pressure=on"}) {
        Path file = onDisk.resolve("disk.img");
        Files.deleteIfExists(file);
        try (var channel = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.CREATE_NEW,
            java.nio.file.StandardOpenOption.WRITE)) {
          channel.write(ByteBuffer.wrap(randomBytes(chunks * chunk, 3)));
          channel.force(true);
        }
        plugin = configured("file", "file=" + file, mode);
        try (Export export = plugin.open(false, "")) {
          ByteBuffer buffer = ByteBuffer.allocateDirect(chunk);
          for (int i = 0; i < chunks; i++) {
            export.pread(buffer.clear(), (long) i * chunk);
          }
          long residentAfterReads = residentBytes(file);
          for (int i = 0; i < chunks; i++) {
            export.pwrite(buffer.clear(), (long) i * chunk, 0);
          }
          long residentAfterWrites = residentBytes(file);
          if (mode.equals("cache=default")) {
            assertThat(residentAfterReads).as(mode).isEqualTo((long) chunks * chunk);
            assertThat(residentAfterWrites).as(mode).isEqualTo((long) chunks * chunk);
          } else {
            assertThat(residentAfterReads).as(mode).isZero();
            // Only the writes still in the window may be cached.
            assertThat(residentAfterWrites).as(mode).isLessThanOrEqualTo((long) WriteEviction.WINDOWS * chunk);
          }
        }
        plugin.unload();
        plugin = null;
      }
    } finally {
      Tools.run("rm", "-rf", onDisk.toString()).assertSuccess();
    }
  }

  @Test
  void fadviseHintsKeepReadsAndWritesExactThroughTheHintedDescriptor() throws Exception {
    assertThat(NativeFileOps.available()).as(NativeFileOps::unavailableReason).isTrue();
    for (String hint : new String[] {"random", "sequential"}) {
      Path file = fileWithData(MIB);
      byte[] original = Files.readAllBytes(file);
      plugin = configured("file", "file=" + file, "fadvise=" + hint);
      try (Export export = plugin.open(false, "")) {
        ByteBuffer direct = ByteBuffer.allocateDirect(70000);
        export.pread(direct, 3);
        assertThat(direct.flip()).as(hint).isEqualTo(ByteBuffer.wrap(original, 3, 70000));
        ByteBuffer written = ByteBuffer.allocateDirect(5000).put(randomBytes(5000, 4)).flip();
        export.pwrite(written, 100000, 0);
        assertThat(written.hasRemaining()).isFalse();
        export.flush();
        assertThat(ByteBuffer.wrap(Files.readAllBytes(file), 100000, 5000)).as(hint).isEqualTo(written.flip());
        ByteBuffer pastEnd = ByteBuffer.allocateDirect(100);
        assertThatThrownBy(() -> export.pread(pastEnd, MIB - 50)).isInstanceOf(NbdException.class);
      }
      plugin.unload();
      plugin = null;
    }
  }

  /** The access modes (flags and O_ACCMODE) of this process's descriptors open on {@code file}. */
  private static List<Integer> accessModesOfDescriptorsOn(Path file) throws Exception {
    Path real = file.toRealPath();
    List<Integer> modes = new ArrayList<>();
    try (Stream<Path> descriptors = Files.list(Path.of("/proc/self/fd"))) {
      for (Path fd : descriptors.toList()) {
        try {
          if (Files.readSymbolicLink(fd).equals(real)) {
            String flags = Files.readAllLines(Path.of("/proc/self/fdinfo", fd.getFileName().toString())).stream()
                .filter(line -> line.startsWith("flags:")).findFirst().orElseThrow();
            modes.add(Integer.parseInt(flags.substring("flags:".length()).trim(), 8) & O_ACCMODE);
          }
        } catch (java.nio.file.NoSuchFileException e) {
          // The listing's own descriptor, closed by now.
        }
      }
    }
    return modes;
  }

  /** The bytes of the file in the page cache, as fincore(1) counts them. */
  private static long residentBytes(Path file) {
    return Long.parseLong(Tools.run("fincore", "--bytes", "--noheadings", "--output", "RES", file.toString())
        .assertSuccess().stdout().trim());
  }

  /** Allocated 512-byte blocks as stat(1) reports them. */
  private static long allocatedBlocks(Path file) {
    return Long.parseLong(Tools.run("stat", "-c", "%b", file.toString()).assertSuccess().stdout().trim());
  }
}
