package io.jnbd.filters.partition;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.filters.window.WindowExport.Span;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Finds one partition of a disk with 512-byte sectors, as nbdkit 1.32 does: a GPT when the
 * second sector starts with "EFI PART" (whatever the MBR says), else an MBR, which needs the
 * 0x55AA signature: primary partitions 1-4, and logical partitions from 5 on along the EBR chain
 * of the first extended partition. Each EBR counts as one logical partition, even an empty one.
 */
final class PartitionTable {
  static final int SECTOR = 512;
  private static final byte[] GPT_SIGNATURE = "EFI PART".getBytes(StandardCharsets.US_ASCII);
  private static final int MBR_ENTRIES = 446;
  private static final int MBR_ENTRY_SIZE = 16;
  private static final int GPT_ENTRY_MIN_SIZE = 128;

  private final Export disk;
  private final long diskSize;

  private PartitionTable(Export disk) throws IOException {
    this.disk = disk;
    this.diskSize = disk.size();
  }

  /** Where partition {@code number} (from 1) lies on {@code disk}, or an error saying why not. */
  static Span find(Export disk, int number) throws IOException {
    return new PartitionTable(disk).find(number);
  }

  private Span find(int number) throws IOException {
    if (diskSize < 2 * SECTOR) {
      throw refuse("the disk is too small to hold a partition table (" + diskSize + " bytes)");
    }
    ByteBuffer head = read(0, 2 * SECTOR);
    Span found;
    if (head.slice(SECTOR, GPT_SIGNATURE.length).equals(ByteBuffer.wrap(GPT_SIGNATURE))) {
      found = gpt(head.slice(SECTOR, SECTOR).order(ByteOrder.LITTLE_ENDIAN), number);
    } else if ((head.get(510) & 0xff) == 0x55 && (head.get(511) & 0xff) == 0xaa) {
      found = mbr(head, number);
    } else {
      throw refuse("the disk has neither an MBR nor a GPT signature");
    }
    if (found.start() > diskSize || found.length() > diskSize - found.start()) {
      throw refuse("partition " + number + " (" + found.start() + "+" + found.length() + ") is outside the "
          + diskSize + "-byte disk");
    }
    return found;
  }

  private Span gpt(ByteBuffer header, int number) throws IOException {
    long entriesLba = header.getLong(72);
    long entryCount = Integer.toUnsignedLong(header.getInt(80));
    long entrySize = Integer.toUnsignedLong(header.getInt(84));
    if (number > entryCount) {
      throw refuse("GPT partition " + number + " is past the " + entryCount + " entries of the table");
    }
    if (entrySize < GPT_ENTRY_MIN_SIZE) {
      throw refuse("GPT entries of " + entrySize + " bytes are too small");
    }
    long at = entriesLba * SECTOR + (number - 1) * entrySize;
    if (entriesLba < 0 || entriesLba > diskSize / SECTOR || at < 0 || at > diskSize - GPT_ENTRY_MIN_SIZE) {
      throw refuse("the GPT entry of partition " + number + " is outside the disk");
    }
    ByteBuffer entry = read(at, GPT_ENTRY_MIN_SIZE);
    boolean unused = entry.getLong(0) == 0 && entry.getLong(8) == 0;
    long first = entry.getLong(32);
    long last = entry.getLong(40);
    if (unused) {
      throw notFound("GPT", number);
    }
    if (first < 0 || last < first || last >= Long.MAX_VALUE / SECTOR) {
      throw refuse("GPT partition " + number + " has a bad extent, sectors " + first + " to " + last);
    }
    return new Span(first * SECTOR, (last - first + 1) * SECTOR);
  }

  private Span mbr(ByteBuffer sector, int number) throws IOException {
    if (number <= 4) {
      int entry = MBR_ENTRIES + (number - 1) * MBR_ENTRY_SIZE;
      if (type(sector, entry) == 0 || isExtended(type(sector, entry)) || sectors(sector, entry + 12) == 0) {
        throw notFound("MBR", number);
      }
      return new Span(sectors(sector, entry + 8) * SECTOR, sectors(sector, entry + 12) * SECTOR);
    }
    for (int primary = 0; primary < 4; primary++) {
      int entry = MBR_ENTRIES + primary * MBR_ENTRY_SIZE;
      if (isExtended(type(sector, entry))) {
        return logical(sectors(sector, entry + 8), sectors(sector, entry + 12), number);
      }
    }
    throw notFound("MBR", number);
  }

  /**
   * Walks the EBR chain of the extended partition at {@code extStart} ({@code extSectors} long):
   * each EBR's first entry is one logical partition, placed relative to that EBR; its second
   * entry links the next EBR, placed relative to the extended partition, and an empty link
   * (zero sectors) ends the chain.
   */
  private Span logical(long extStart, long extSectors, int number) throws IOException {
    long ebr = extStart;
    for (int logical = 5; ; logical++) {
      if ((ebr + 1) * SECTOR > diskSize) {
        throw refuse("the EBR of partition " + logical + " at sector " + ebr + " is outside the disk");
      }
      ByteBuffer sector = read(ebr * SECTOR, SECTOR);
      if (logical == number) {
        long start = ebr + sectors(sector, MBR_ENTRIES + 8);
        long length = sectors(sector, MBR_ENTRIES + 12);
        if (length == 0 || start + length > extStart + extSectors) {
          throw refuse("logical partition " + number + " (sectors " + start + "+" + length
              + ") is empty or outside its extended partition");
        }
        return new Span(start * SECTOR, length * SECTOR);
      }
      int link = MBR_ENTRIES + MBR_ENTRY_SIZE;
      if (sectors(sector, link + 12) == 0) {
        throw notFound("MBR", number);
      }
      long next = extStart + sectors(sector, link + 8);
      if (next <= ebr) {
        throw refuse("the EBR chain loops: the EBR at sector " + ebr + " links back to sector " + next);
      }
      ebr = next;
    }
  }

  private static int type(ByteBuffer sector, int entry) {
    return sector.get(entry + 4) & 0xff;
  }

  private static boolean isExtended(int type) {
    return type == 0x05 || type == 0x0f || type == 0x85;
  }

  /** An unsigned 32-bit sector number or count; {@code sector} is little-endian, as read. */
  private static long sectors(ByteBuffer sector, int at) {
    return Integer.toUnsignedLong(sector.getInt(at));
  }

  private ByteBuffer read(long offset, int length) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    disk.pread(buffer, offset);
    return buffer.flip().order(ByteOrder.LITTLE_ENDIAN);
  }

  private static NbdException notFound(String table, int number) {
    return refuse(table + " partition " + number + " not found");
  }

  private static NbdException refuse(String why) {
    return new NbdException(Errno.EINVAL, "partition: " + why);
  }
}
