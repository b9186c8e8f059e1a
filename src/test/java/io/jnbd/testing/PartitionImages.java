package io.jnbd.testing;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.UUID;
import java.util.zip.CRC32;

/**
 * Partitioned disk images built byte by byte, for the partition filter's tests: an MBR with
 * primary, extended and logical partitions, and a GPT. Every 8-byte word of the disk outside the
 * tables holds its own offset, big-endian (as the pattern plugin's), so a read shows where in the
 * disk it came from.
 */
public final class PartitionImages {
  public static final int SECTOR = 512;
  /** Both images: 2048 sectors. */
  public static final int SECTORS = 2048;

  private PartitionImages() {}

  /** One partition as the filter should serve it: where it starts and how long it is, in sectors. */
  public record Expected(int number, long startSector, long sectors) {
    public long start() {
      return startSector * SECTOR;
    }

    public long length() {
      return sectors * SECTOR;
    }
  }

  /**
   * An MBR disk: primary 1 (sectors 64-127), extended 2 (256-1279) holding logical 5 (EBR at
   * 256, data at 272, 32 sectors) and 6 (EBR at 768, data at 784, 64 sectors), no 3, primary 4
   * (1536-2047).
   */
  public static byte[] mbr() {
    byte[] disk = patterned();
    mbrEntry(disk, 0, 0, 0x83, 64, 64);
    mbrEntry(disk, 0, 1, 0x05, 256, 1024);
    mbrEntry(disk, 0, 3, 0x83, 1536, 512);
    mbrEntry(disk, 256, 0, 0x83, 16, 32);
    mbrEntry(disk, 256, 1, 0x05, 512, 128);
    mbrEntry(disk, 768, 0, 0x83, 16, 64);
    return disk;
  }

  /** The partitions of {@link #mbr()}. */
  public static final Expected[] MBR_PARTITIONS = {
      new Expected(1, 64, 64), new Expected(4, 1536, 512), new Expected(5, 272, 32), new Expected(6, 784, 64)};

  /**
   * A GPT disk (protective MBR, 128 entries of 128 bytes at sector 2, backup table and header at
   * the end): partition 1 (sectors 64-127), 2 (128-383), no 3, 4 (1024-1055).
   */
  public static byte[] gpt() {
    byte[] disk = patterned();
    mbrEntry(disk, 0, 0, 0xee, 1, SECTORS - 1);
    int entries = 128;
    int entrySize = 128;
    ByteBuffer table = ByteBuffer.allocate(entries * entrySize).order(ByteOrder.LITTLE_ENDIAN);
    long[][] partitions = {{64, 127}, {128, 383}, null, {1024, 1055}};
    UUID linuxData = UUID.fromString("0fc63daf-8483-4772-8e79-3d69d8477de4");
    for (int i = 0; i < partitions.length; i++) {
      if (partitions[i] == null) {
        continue;
      }
      table.position(i * entrySize);
      putGuid(table, linuxData);
      putGuid(table, new UUID(0x1234, i + 1));
      table.putLong(partitions[i][0]).putLong(partitions[i][1]).putLong(0);
      table.put(("part" + (i + 1)).getBytes(StandardCharsets.UTF_16LE));
    }
    int tableSectors = table.capacity() / SECTOR;
    long backupTable = SECTORS - 1 - tableSectors;
    System.arraycopy(table.array(), 0, disk, 2 * SECTOR, table.capacity());
    System.arraycopy(table.array(), 0, disk, (int) backupTable * SECTOR, table.capacity());
    gptHeader(disk, 1, SECTORS - 1, 2, entries, entrySize, crc(table.array()));
    gptHeader(disk, SECTORS - 1, 1, backupTable, entries, entrySize, crc(table.array()));
    return disk;
  }

  /** The partitions of {@link #gpt()}. */
  public static final Expected[] GPT_PARTITIONS = {
      new Expected(1, 64, 64), new Expected(2, 128, 256), new Expected(4, 1024, 32)};

  /** The partition numbers that neither image has. */
  public static final int[] MBR_MISSING = {2, 3, 7};
  public static final int[] GPT_MISSING = {3, 5, 128, 129};

  private static byte[] patterned() {
    ByteBuffer disk = ByteBuffer.allocate(SECTORS * SECTOR);
    while (disk.hasRemaining()) {
      disk.putLong(disk.position());
    }
    return disk.array();
  }

  /** Sets entry {@code slot} (0-3) of the MBR or EBR in sector {@code table}, and its signature. */
  public static void mbrEntry(byte[] disk, long table, int slot, int type, long start, long count) {
    ByteBuffer sector = ByteBuffer.wrap(disk, (int) table * SECTOR, SECTOR).slice().order(ByteOrder.LITTLE_ENDIAN);
    if ((sector.get(511) & 0xff) != 0xaa) {
      // A new table: clear the pattern from its entries.
      Arrays.fill(disk, (int) table * SECTOR + 446, (int) table * SECTOR + 510, (byte) 0);
    }
    int entry = 446 + slot * 16;
    sector.put(entry + 4, (byte) type).putInt(entry + 8, (int) start).putInt(entry + 12, (int) count);
    sector.put(510, (byte) 0x55).put(511, (byte) 0xaa);
  }

  private static void gptHeader(byte[] disk, long at, long alternate, long entriesAt, int entries, int entrySize, int tableCrc) {
    ByteBuffer header = ByteBuffer.allocate(92).order(ByteOrder.LITTLE_ENDIAN);
    header.put("EFI PART".getBytes(StandardCharsets.US_ASCII)).putInt(0x10000).putInt(92).putInt(0).putInt(0);
    header.putLong(at).putLong(alternate).putLong(34).putLong(SECTORS - 34);
    putGuid(header, new UUID(0x5678, 1));
    header.putLong(entriesAt).putInt(entries).putInt(entrySize).putInt(tableCrc);
    header.putInt(16, crc(header.array()));
    Arrays.fill(disk, (int) at * SECTOR, (int) (at + 1) * SECTOR, (byte) 0);
    System.arraycopy(header.array(), 0, disk, (int) at * SECTOR, 92);
  }

  private static void putGuid(ByteBuffer out, UUID guid) {
    ByteBuffer bigEndian = ByteBuffer.allocate(16).putLong(guid.getMostSignificantBits()).putLong(guid.getLeastSignificantBits());
    byte[] b = bigEndian.array();
    // GPT stores the first three GUID fields little-endian.
    out.put(new byte[] {b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]}).put(b, 8, 8);
  }

  private static int crc(byte[] bytes) {
    CRC32 crc = new CRC32();
    crc.update(bytes);
    return (int) crc.getValue();
  }
}
