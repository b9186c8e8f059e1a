package io.jnbd.filters.stats;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.stream.IntStream;

/**
 * The request sizes and offset alignments of one operation, for the breakdown that
 * statsthreshold asks for. A request of {@code length} bytes falls in the size class {@code
 * floor(log2(length))}: class 12 holds 4096 to 8191 bytes. Its offset is aligned to {@code 2^k}
 * for every k up to the offset's trailing zero bits (offset 0 is aligned to everything).
 */
final class Histogram {
  private static final int CLASSES = 64;
  /** Trailing zero bits of an offset: 0 to 63, and 64 for offset 0. */
  private static final int ALIGNMENTS = 65;

  private final AtomicLongArray requests = new AtomicLongArray(CLASSES);
  private final AtomicLongArray bytes = new AtomicLongArray(CLASSES);
  private final AtomicLongArray alignments = new AtomicLongArray(CLASSES * ALIGNMENTS);

  void record(long offset, long length) {
    int sizeClass = 63 - Long.numberOfLeadingZeros(Math.max(1, length));
    requests.incrementAndGet(sizeClass);
    bytes.addAndGet(sizeClass, length);
    alignments.incrementAndGet(sizeClass * ALIGNMENTS + Long.numberOfTrailingZeros(offset));
  }

  /**
   * The breakdown, most common size class first, until the classes shown cover {@code percent}
   * of the requests; the rest are summed as "other sizes". Under each class, the share of its
   * requests whose offset is aligned to each power of two where that share changes, from the
   * lowest, until the share falls below {@code 100 - percent}.
   */
  List<String> lines(int percent) {
    long total = 0;
    for (int i = 0; i < CLASSES; i++) {
      total += requests.get(i);
    }
    List<String> lines = new ArrayList<>();
    if (total == 0) {
      return lines;
    }
    List<Integer> classes = IntStream.range(0, CLASSES).filter(c -> requests.get(c) > 0).boxed()
        .sorted(Comparator.comparingLong((Integer c) -> -requests.get(c)).thenComparing(c -> c)).toList();
    long shown = 0;
    int next = 0;
    for (; next < classes.size() && shown * 100 < percent * total; next++) {
      int sizeClass = classes.get(next);
      long count = requests.get(sizeClass);
      lines.add(String.format(Locale.ROOT, "  2^%d to 2^%d-1 bytes: %.1f%% (%d requests, %s)",
          sizeClass, sizeClass + 1, 100.0 * count / total, count, StatsFilter.human(bytes.get(sizeClass))));
      alignmentLines(sizeClass, count, percent, lines);
      shown += count;
    }
    if (next < classes.size()) {
      long otherBytes = 0;
      for (int sizeClass : classes.subList(next, classes.size())) {
        otherBytes += bytes.get(sizeClass);
      }
      lines.add(String.format(Locale.ROOT, "  other sizes: %.1f%% (%d requests, %s)",
          100.0 * (total - shown) / total, total - shown, StatsFilter.human(otherBytes)));
    }
    return lines;
  }

  private void alignmentLines(int sizeClass, long count, int percent, List<String> lines) {
    long aligned = count;
    for (int bits = 0; bits < ALIGNMENTS - 1; bits++) {
      long exactly = alignments.get(sizeClass * ALIGNMENTS + bits);
      if (exactly == 0) {
        continue;
      }
      lines.add(String.format(Locale.ROOT, "    offset aligned to 2^%d: %.1f%% (%d)", bits, 100.0 * aligned / count, aligned));
      if (aligned * 100 < (100 - percent) * count) {
        return;
      }
      aligned -= exactly;
    }
  }
}
