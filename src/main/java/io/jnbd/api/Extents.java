package io.jnbd.api;

import java.util.Arrays;

/**
 * Collects the allocation map a layer reports for a range, for NBD_CMD_BLOCK_STATUS with the
 * {@code base:allocation} context.
 *
 * <p>Extents are added in ascending order and must be contiguous from {@link #start()}; parts
 * before the start or past {@link #end()} are clipped, so a layer may simply report whole blocks
 * that straddle the range. Adjacent extents of the same type are merged. A layer that reports
 * nothing for some range leaves it to the server, which treats it as allocated data.
 */
public final class Extents {
  /** The range reads as zeroes and takes no space ({@code NBD_STATE_HOLE}). */
  public static final int HOLE = 1;
  /** The range reads as zeroes ({@code NBD_STATE_ZERO}). */
  public static final int ZERO = 2;
  /** Both: an unallocated range of zeroes. */
  public static final int HOLE_ZERO = HOLE | ZERO;
  /** Allocated data: the only status that is always safe to report. */
  public static final int DATA = 0;

  private final long start;
  private final long end;
  private long[] lengths = new long[8];
  private int[] types = new int[8];
  private int count;
  private long covered;

  /** Collects extents for [start, end). */
  public Extents(long start, long end) {
    if (start < 0 || end < start) {
      throw new IllegalArgumentException("bad extents range " + start + ".." + end);
    }
    this.start = start;
    this.end = end;
    this.covered = start;
  }

  public long start() {
    return start;
  }

  public long end() {
    return end;
  }

  /** Where the next extent must begin: everything before it has been reported. */
  public long next() {
    return covered;
  }

  /** True once the whole range has been reported; a layer may stop early. */
  public boolean isFull() {
    return covered >= end;
  }

  /**
   * Reports that [offset, offset+length) has the given status ({@link #DATA}, {@link #HOLE},
   * {@link #ZERO} or both).
   *
   * @throws IllegalArgumentException if the extent leaves a gap after what was reported before
   */
  public void add(long offset, long length, int type) {
    if (length <= 0) {
      return;
    }
    long from = Math.max(offset, covered);
    long to = Math.min(offset + length, end);
    if (offset > covered) {
      throw new IllegalArgumentException(
          "extent at " + offset + " leaves a gap after " + covered);
    }
    if (to <= from) {
      return;
    }
    if (count > 0 && types[count - 1] == type) {
      lengths[count - 1] += to - from;
    } else {
      if (count == lengths.length) {
        lengths = Arrays.copyOf(lengths, count * 2);
        types = Arrays.copyOf(types, count * 2);
      }
      lengths[count] = to - from;
      types[count] = type & HOLE_ZERO;
      count++;
    }
    covered = to;
  }

  /** Number of extents collected (after merging). */
  public int count() {
    return count;
  }

  public long length(int index) {
    return lengths[index];
  }

  public int type(int index) {
    return types[index];
  }
}
