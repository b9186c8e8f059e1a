package io.jnbd.filters.partition;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.filters.window.WindowExport.Span;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.PartitionImages;
import io.jnbd.testing.PartitionImages.Expected;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PartitionFilterTest {
  @TempDir Path dir;

  private static ArrayDisk disk(byte[] image) {
    ArrayDisk disk = new ArrayDisk(image.length);
    System.arraycopy(image, 0, disk.data, 0, image.length);
    return disk;
  }

  private static Span find(byte[] image, int number) throws Exception {
    try (Export export = disk(image).open(true, "")) {
      return PartitionTable.find(export, number);
    }
  }

  private static void assertRefused(byte[] image, int number, String why) {
    assertThatThrownBy(() -> find(image, number)).isInstanceOf(NbdException.class).hasMessageContaining(why);
  }

  @Test
  void findsPrimaryAndLogicalMbrPartitions() throws Exception {
    for (Expected partition : PartitionImages.MBR_PARTITIONS) {
      assertThat(find(PartitionImages.mbr(), partition.number())).isEqualTo(new Span(partition.start(), partition.length()));
    }
    assertRefused(PartitionImages.mbr(), 2, "MBR partition 2 not found");
    assertRefused(PartitionImages.mbr(), 3, "MBR partition 3 not found");
    assertRefused(PartitionImages.mbr(), 7, "MBR partition 7 not found");
  }

  @Test
  void findsGptPartitionsWhateverTheMbrSays() throws Exception {
    byte[] image = PartitionImages.gpt();
    for (Expected partition : PartitionImages.GPT_PARTITIONS) {
      assertThat(find(image, partition.number())).isEqualTo(new Span(partition.start(), partition.length()));
    }
    assertRefused(image, 3, "GPT partition 3 not found");
    assertRefused(image, 129, "past the 128 entries");
    Arrays.fill(image, 446, 512, (byte) 0);
    assertThat(find(image, 2)).isEqualTo(new Span(128 * 512, 256 * 512));
  }

  @Test
  void refusesDisksWithoutATableOrWithABadOne() throws Exception {
    assertRefused(new byte[1023], 1, "too small");
    assertRefused(new byte[4096], 1, "neither an MBR nor a GPT");
    byte[] beyond = new byte[1 << 20];
    PartitionImages.mbrEntry(beyond, 0, 0, 0x83, 1024, 4096);
    assertRefused(beyond, 1, "outside the 1048576-byte disk");
    byte[] loop = PartitionImages.mbr();
    PartitionImages.mbrEntry(loop, 768, 1, 0x05, 0, 128);
    assertRefused(loop, 7, "loops");
    byte[] emptyLogical = PartitionImages.mbr();
    PartitionImages.mbrEntry(emptyLogical, 256, 0, 0, 0, 0);
    assertRefused(emptyLogical, 5, "empty or outside its extended partition");
    assertThat(find(emptyLogical, 6)).as("an empty EBR still counts").isEqualTo(new Span(784 * 512, 64 * 512));
    byte[] smallEntries = PartitionImages.gpt();
    ByteBuffer.wrap(smallEntries).order(ByteOrder.LITTLE_ENDIAN).putInt(512 + 84, 64);
    assertRefused(smallEntries, 1, "too small");
  }

  @Test
  void thePartitionNumberIsRequiredAndCountsFromOne() {
    assertThatThrownBy(() -> new PartitionFilter().configComplete()).isInstanceOf(ConfigException.class)
        .hasMessageContaining("partition=");
    assertThatThrownBy(() -> new PartitionFilter().config("partition", "0")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("partition");
  }

  @Test
  void aClientOfAMissingPartitionIsRefusedAtOpen() {
    var stack = Stacks.configured(new PartitionFilter(), disk(PartitionImages.mbr()), "partition=3");
    assertThatThrownBy(() -> stack.open(true, "")).isInstanceOf(NbdException.class).hasMessageContaining("not found");
  }

  @Test
  @Tag("slow")
  void nbdcopyCopiesOnlyThePartition() throws Exception {
    Tools.require("nbdcopy");
    for (byte[] image : List.of(PartitionImages.mbr(), PartitionImages.gpt())) {
      Expected partition = image[450] == (byte) 0xee ? PartitionImages.GPT_PARTITIONS[1] : PartitionImages.MBR_PARTITIONS[3];
      PartitionFilter filter = new PartitionFilter();
      filter.config("partition", Integer.toString(partition.number()));
      try (TestServer server = new TestServer(List.of(filter), disk(image), ServerConfig.defaults())) {
        Path out = dir.resolve("partition.img");
        Tools.run("nbdcopy", server.uri(), out.toString()).assertSuccess();
        assertThat(Files.readAllBytes(out))
            .isEqualTo(Arrays.copyOfRange(image, (int) partition.start(), (int) (partition.start() + partition.length())));
      }
    }
  }
}
