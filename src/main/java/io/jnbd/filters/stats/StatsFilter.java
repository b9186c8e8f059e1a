package io.jnbd.filters.stats;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The stats filter: counts requests, bytes, errors and time spent per operation over all
 * connections, and reports them with the elapsed time and rates when the server exits, to a
 * file ({@code statsfile}) or the log.
 */
public final class StatsFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(StatsFilter.class);

  /** Counters of one operation. */
  static final class Op {
    final String name;
    final LongAdder requests = new LongAdder();
    final LongAdder bytes = new LongAdder();
    final LongAdder errors = new LongAdder();
    final LongAdder nanos = new LongAdder();

    Op(String name) {
      this.name = name;
    }

    void record(long byteCount, long started, boolean failed) {
      requests.increment();
      bytes.add(byteCount);
      nanos.add(System.nanoTime() - started);
      if (failed) {
        errors.increment();
      }
    }
  }

  private Path statsFile;
  private boolean append;
  private long startedNanos = System.nanoTime();
  final Op read = new Op("read");
  final Op write = new Op("write");
  final Op trim = new Op("trim");
  final Op zero = new Op("zero");
  final Op extents = new Op("extents");
  final Op cache = new Op("cache");
  final Op flush = new Op("flush");
  private final List<Op> ops = List.of(read, write, trim, zero, extents, cache, flush);

  @Override
  public String name() {
    return "stats";
  }

  @Override
  public String description() {
    return "count requests, bytes and time per operation and report them at exit";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("statsfile", "PATH", "Write the report to this file at exit (default: the log, at INFO)."),
        new Parameter("statsappend", "true|false", "Append to statsfile instead of replacing it (default false)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "statsfile" -> statsFile = Path.of(value);
      case "statsappend" -> append = Values.parseBool("stats: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    startedNanos = System.nanoTime();
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new Counting(next.open(readOnly, exportName));
  }

  /** The report: elapsed time, then one line per operation that was used. */
  List<String> report() {
    double elapsed = (System.nanoTime() - startedNanos) / 1e9;
    List<String> lines = new ArrayList<>();
    long totalRequests = 0;
    long totalBytes = 0;
    for (Op op : ops) {
      totalRequests += op.requests.sum();
      totalBytes += op.bytes.sum();
    }
    lines.add(String.format(Locale.ROOT, "elapsed time: %.3f s", elapsed));
    lines.add(line("total", totalRequests, totalBytes, -1, -1, elapsed));
    for (Op op : ops) {
      if (op.requests.sum() > 0) {
        lines.add(line(op.name, op.requests.sum(), op.bytes.sum(), op.errors.sum(), op.nanos.sum() / 1e9, elapsed));
      }
    }
    return lines;
  }

  private static String line(String name, long requests, long bytes, long errors, double busy, double elapsed) {
    StringBuilder out = new StringBuilder(String.format(Locale.ROOT, "%s: %d ops, %s, %s/s", name, requests, human(bytes), human(elapsed > 0 ? (long) (bytes / elapsed) : 0)));
    if (errors >= 0) {
      out.append(String.format(Locale.ROOT, ", %d errors, %.3f s in requests", errors, busy));
    }
    return out.toString();
  }

  private static String human(long bytes) {
    String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = bytes;
    int unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return unit == 0 ? bytes + " B" : String.format(Locale.ROOT, "%.2f %s (%d bytes)", value, units[unit], bytes);
  }

  @Override
  public void unload() {
    List<String> lines = report();
    if (statsFile == null) {
      lines.forEach(line -> log.info("stats: {}", line));
      return;
    }
    try {
      Files.writeString(statsFile, String.join("\n", lines) + "\n", StandardCharsets.UTF_8,
          StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING);
    } catch (IOException e) {
      log.warn("stats: cannot write {}: {}", statsFile, e.getMessage());
      lines.forEach(line -> log.info("stats: {}", line));
    }
  }

  private final class Counting extends FilterExport {
    Counting(Export next) {
      super(next);
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      long started = System.nanoTime();
      int length = buffer.remaining();
      boolean failed = true;
      try {
        next.pread(buffer, offset);
        failed = false;
      } finally {
        read.record(length, started, failed);
      }
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      long started = System.nanoTime();
      int length = buffer.remaining();
      boolean failed = true;
      try {
        next.pwrite(buffer, offset, flags);
        failed = false;
      } finally {
        write.record(length, started, failed);
      }
    }

    @Override
    public void flush() throws IOException {
      long started = System.nanoTime();
      boolean failed = true;
      try {
        next.flush();
        failed = false;
      } finally {
        flush.record(0, started, failed);
      }
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      long started = System.nanoTime();
      boolean failed = true;
      try {
        next.trim(offset, length, flags);
        failed = false;
      } finally {
        trim.record(length, started, failed);
      }
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      long started = System.nanoTime();
      boolean failed = true;
      try {
        next.zero(offset, length, flags);
        failed = false;
      } finally {
        zero.record(length, started, failed);
      }
    }

    @Override
    public void extents(long offset, long length, int flags, Extents out) throws IOException {
      long started = System.nanoTime();
      boolean failed = true;
      try {
        next.extents(offset, length, flags, out);
        failed = false;
      } finally {
        extents.record(length, started, failed);
      }
    }

    @Override
    public void cache(long offset, long length) throws IOException {
      long started = System.nanoTime();
      boolean failed = true;
      try {
        next.cache(offset, length);
        failed = false;
      } finally {
        cache.record(length, started, failed);
      }
    }
  }
}
