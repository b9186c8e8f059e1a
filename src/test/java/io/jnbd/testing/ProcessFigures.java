package io.jnbd.testing;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * What this JVM holds: threads, file descriptors and memory, for tests that check the server
 * gives back everything a client made it take.
 *
 * @param namedThreads live threads, virtual ones included, whose name starts with the prefix asked for
 * @param platformThreads names of the JVM's live platform threads, less the carriers of virtual
 *     threads (the JVM starts and retires those on its own)
 * @param openFds entries in /proc/self/fd
 * @param heapBytes heap in use, measured after a garbage collection
 * @param directBytes direct buffer memory in use, after the same collection
 * @param rssKib resident set size; the JVM rarely hands heap back, so this is for reading, not asserting
 */
public record ProcessFigures(
    long namedThreads, List<String> platformThreads, long openFds, long heapBytes, long directBytes, long rssKib) {

  /** Collects garbage first, so that what is counted is what is still referenced. */
  public static ProcessFigures measure(String threadPrefix) {
    collectGarbage();
    return new ProcessFigures(
        liveThreadsNamed(threadPrefix),
        platformThreadNames(),
        countOpenFds(),
        ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed(),
        directMemoryUsed(),
        readRssKib());
  }

  @Override
  public String toString() {
    return String.format("threads %d named / %d platform, fds %d, heap %.1f MiB, direct %.1f MiB, RSS %.1f MiB",
        namedThreads, platformThreads.size(), openFds, heapBytes / 1048576.0, directBytes / 1048576.0, rssKib / 1024.0);
  }

  /** Live threads, virtual ones included, whose name starts with prefix (from a thread dump). */
  public static long liveThreadsNamed(String prefix) {
    try {
      Path dump = Files.createTempDirectory("jnbd-threads").resolve("dump.txt");
      try {
        ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class)
            .dumpThreads(dump.toString(), HotSpotDiagnosticMXBean.ThreadDumpFormat.TEXT_PLAIN);
        try (Stream<String> lines = Files.lines(dump)) {
          return lines.filter(line -> line.contains("\"" + prefix)).count();
        }
      } finally {
        Files.deleteIfExists(dump);
        Files.deleteIfExists(dump.getParent());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static List<String> platformThreadNames() {
    return Thread.getAllStackTraces().keySet().stream()
        .filter(thread -> !thread.getClass().getName().equals("jdk.internal.misc.CarrierThread"))
        .map(Thread::getName)
        .sorted()
        .toList();
  }

  private static long countOpenFds() {
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      // Less one: the descriptor this listing itself holds open.
      return fds.count() - 1;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static long directMemoryUsed() {
    return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
        .filter(pool -> pool.getName().equals("direct"))
        .mapToLong(BufferPoolMXBean::getMemoryUsed)
        .sum();
  }

  private static long readRssKib() {
    try (Stream<String> status = Files.lines(Path.of("/proc/self/status"))) {
      return status.filter(line -> line.startsWith("VmRSS:"))
          .mapToLong(line -> Long.parseLong(line.replaceAll("\\D", "")))
          .findFirst()
          .orElse(-1);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Unreachable direct buffers are freed by a cleaner thread after the collection that finds
   * them, so collect until direct memory stops shrinking.
   */
  private static void collectGarbage() {
    long direct = Long.MAX_VALUE;
    for (int round = 0; round < 10; round++) {
      System.gc();
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
      long now = directMemoryUsed();
      if (now >= direct) {
        return;
      }
      direct = now;
    }
  }
}
