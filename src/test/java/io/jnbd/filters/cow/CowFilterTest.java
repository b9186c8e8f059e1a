package io.jnbd.filters.cow;

import static io.jnbd.testing.Exports.read;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.Support;
import io.jnbd.cli.Main;
import io.jnbd.server.Catalog;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Layers;
import io.jnbd.testing.SlowDisk;
import io.jnbd.testing.Stacks;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CowFilterTest {
  @TempDir Path temp;

  @Test
  void isFoundByNameAndClaimsOnlyItsKeys() {
    CowFilter cow = (CowFilter) Catalog.filter("cow");
    assertThat(cow.config("cow-block-size", "4K")).isTrue();
    assertThat(cow.config("cow-on-cache", "true")).isTrue();
    assertThat(cow.config("cow-on-read", "/run/convert")).isTrue();
    assertThat(cow.config("cow-storage", "memory")).isTrue();
    assertThat(cow.config("file", "disk.img")).isFalse();
    assertThat(cow.parameters()).extracting(p -> p.key())
        .containsExactly("cow-block-size", "cow-on-cache", "cow-on-read", "cow-storage");
  }

  @Test
  void rejectsBadValuesNamingTheKey() {
    for (String size : List.of("2048", "3000", "48k", "64M", "0", "8G")) {
      CowFilter odd = new CowFilter();
      odd.config("cow-block-size", size);
      assertThatThrownBy(odd::configComplete).as(size).isInstanceOf(ConfigException.class)
          .hasMessageStartingWith("cow: cow-block-size must be a power of 2 from 4K to 32M: ");
    }
    CowFilter cow = new CowFilter();
    assertThatThrownBy(() -> cow.config("cow-block-size", "big")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("cow: cow-block-size: ");
    assertThatThrownBy(() -> cow.config("cow-on-cache", "/x")).isInstanceOf(ConfigException.class).hasMessageContaining("cow-on-cache");
    assertThatThrownBy(() -> cow.config("cow-on-read", "relative/path")).isInstanceOf(ConfigException.class).hasMessageContaining("cow-on-read");
    assertThatThrownBy(() -> cow.config("cow-storage", "disk")).isInstanceOf(ConfigException.class).hasMessageContaining("cow-storage");
  }

  /** virt-v2v decides how to run nbdkit from these: the probe for the filter, and two greps of its help. */
  @Test
  void answersVirtV2vsProbes() {
    assertThat(jnbd("null", "--filter=cow", "--version")).isNotNull();
    String help = jnbd("null", "--filter=cow", "--help");
    assertThat(help.lines()).anyMatch(line -> line.matches(".*cow-on-read=.*/PATH.*"));
    assertThat(help.lines()).anyMatch(line -> line.contains("cow-block-size"));
  }

  private static String jnbd(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    int status = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(new ByteArrayOutputStream()));
    assertThat(status).as("jnbd %s", String.join(" ", args)).isZero();
    return out.toString(StandardCharsets.UTF_8);
  }

  private static Stack stack(ArrayDisk disk, String... keyValues) {
    return Stacks.configured(Layers.filter("cow", keyValues), disk);
  }

  @Test
  void makesAReadOnlyExportWritableWithNbdkitsCapabilities() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    disk.writable = false;
    disk.trim = false;
    disk.zero = Support.NONE;
    disk.extents = false;
    disk.cache = Support.NONE;
    disk.multiConn = false;
    try (Export export = stack(disk, "cow-storage=memory").open(false, "")) {
      assertThat(export.canWrite()).isTrue();
      assertThat(export.canFlush()).isTrue();
      assertThat(export.canFua()).isEqualTo(Support.NATIVE);
      assertThat(export.canTrim()).isTrue();
      assertThat(export.canZero()).isEqualTo(Support.NATIVE);
      assertThat(export.canFastZero()).isFalse();
      assertThat(export.canExtents()).isTrue();
      assertThat(export.canCache()).isEqualTo(Support.NATIVE);
      assertThat(export.canMultiConn()).isTrue();
      assertThat(export.blockSize()).isEqualTo(new BlockSize(1, 64 * 1024, BlockSize.DEFAULT.maximum()));
    }
  }

  @Test
  void opensTheLayerBelowReadOnlyAndNeverWritesIt() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Arrays.fill(disk.data, (byte) 5);
    try (Export export = stack(disk, "cow-storage=memory").open(false, "")) {
      export.pwrite(ByteBuffer.wrap(new byte[] {1, 2, 3}), 1000, 0);
      export.zero(0, 100, 0);
      export.trim(64 * 1024, 128 * 1024, 0);
      export.flush();
      assertThat(read(export, 998, 6)).containsExactly(5, 5, 1, 2, 3, 5);
      assertThat(read(export, 64 * 1024, 4)).containsExactly(0, 0, 0, 0);
    }
    byte[] untouched = new byte[1 << 20];
    Arrays.fill(untouched, (byte) 5);
    assertThat(disk.data).isEqualTo(untouched);
    assertThat(disk.flushes.get()).isZero();
  }

  @Test
  void everyExportNameHasItsOwnOverlaySharedByItsConnections() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Stack stack = stack(disk);
    try (Export a1 = stack.open(false, "a"); Export a2 = stack.open(false, "a"); Export b = stack.open(false, "b")) {
      a1.pwrite(ByteBuffer.wrap(new byte[] {9}), 0, 0);
      assertThat(read(a2, 0, 1)).containsExactly(9);
      assertThat(read(b, 0, 1)).containsExactly(0);
    }
  }

  @Test
  void copiesOnReadWhileThePathExists() throws Exception {
    SlowDisk disk = new SlowDisk(1 << 20, 0, 7);
    Path flag = temp.resolve("convert");
    Stack stack = Stacks.configured(Layers.filter("cow", "cow-on-read=" + flag, "cow-storage=memory"), disk);
    try (Export export = stack.open(false, "")) {
      read(export, 0, 4096);
      read(export, 0, 4096);
      assertThat(disk.preads.get()).as("nothing kept while %s is missing", flag).isEqualTo(2);
      Files.createFile(flag);
      assertThat(read(export, 0, 4096)).isEqualTo(Arrays.copyOf(disk.data, 4096));
      read(export, 0, 4096);
      assertThat(disk.preads.get()).as("kept once %s exists", flag).isEqualTo(3);
      Files.delete(flag);
      read(export, 100_000, 10);
      read(export, 100_000, 10);
      assertThat(disk.preads.get()).isEqualTo(5);
    }
  }

  @Test
  void cacheRequestsCopyBlocksInWithCowOnCacheAndOtherwiseGoBelowForAbsentBlocks() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Stack passing = stack(disk, "cow-storage=memory");
    try (Export export = passing.open(false, "")) {
      export.pwrite(ByteBuffer.wrap(new byte[64 * 1024]), 0, 0);
      export.cache(0, 64 * 1024);
      assertThat(disk.caches.get()).as("all in the overlay: nothing to cache below").isZero();
      export.cache(0, 256 * 1024);
      assertThat(disk.caches.get()).isEqualTo(1);
    }
    Stack copying = stack(disk, "cow-storage=memory", "cow-on-cache=true");
    CowFilter cow = (CowFilter) copying.filters().get(0);
    try (Export export = copying.open(false, "")) {
      export.cache(100, 200_000);
      Overlay overlay = cow.overlayOf("");
      assertThat(new byte[] {overlay.state(0), overlay.state(3), overlay.state(4)})
          .containsExactly(BlockStates.ALLOCATED, BlockStates.ALLOCATED, BlockStates.ABSENT);
    }
    assertThat(disk.caches.get()).isEqualTo(1);
  }

  @Test
  void readsWhollyOutsideTheOverlayAreHandedOverFromBelowUnlessCopiedOnRead() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Arrays.fill(disk.data, (byte) 5);
    disk.handsOver = true;
    Path flag = temp.resolve("convert");
    try (Export export = stack(disk, "cow-storage=memory", "cow-on-read=" + flag).open(false, "")) {
      export.pwrite(ByteBuffer.wrap(new byte[] {1}), 70_000, 0);
      export.zero(200_000, 64 * 1024, Flags.MAY_TRIM);
      assertThat(Exports.handedOver(export, 0, 64 * 1024)).containsOnly(5);
      assertThat(Exports.handedOver(export, 131_072, 60_000)).containsOnly(5);
      assertThat(export.readData(60_000, 20_000)).as("a written block").isNull();
      assertThat(export.readData(180_000, 30_000)).as("a zeroed block").isNull();
      Files.createFile(flag);
      assertThat(export.readData(0, 4096)).as("copied on read").isNull();
      assertThat(disk.viewsOut).hasValue(0);
    }
  }
}
