package io.jnbd.filters.stats;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.ReadData;
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
 * file ({@code statsfile}) or the log. With {@code statsthreshold} above 0 it also breaks each
 * operation down by request size and offset alignment (see {@link Histogram}).
 *
 * <p>Only reads, writes, trims and zeroes count as bytes moved in the total and the rates, as in
 * nbdkit: an extents or cache request names a range but moves none of it.
 */
public final class StatsFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(StatsFilter.class);

  /** What the byte count of an operation's requests means. */
  enum Span {
    /** Bytes moved or changed: read, write, trim, zero. */
    DATA,
    /** A range asked about or hinted at, nothing moved: extents, cache. */
    RANGE,
    /** No range at all: flush. */
    NONE
  }

  /** Counters of one operation. */
  static final class Op {
    final String name;
    final Span span;
    final LongAdder requests = new LongAdder();
    final LongAdder bytes = new LongAdder();
    final LongAdder errors = new LongAdder();
    final LongAdder nanos = new LongAdder();
    final Histogram histogram = new Histogram();

    Op(String name, Span span) {
      this.name = name;
      this.span = span;
    }
  }

  private Path statsFile;
  private boolean append;
  private int threshold = 95;
  private Reporting reporting = new Reporting(statsFile, append, threshold);
  private long startedNanos = System.nanoTime();
  final Op read = new Op("read", Span.DATA);
  final Op write = new Op("write", Span.DATA);
  final Op trim = new Op("trim", Span.DATA);
  final Op zero = new Op("zero", Span.DATA);
  final Op extents = new Op("extents", Span.RANGE);
  final Op cache = new Op("cache", Span.RANGE);
  final Op flush = new Op("flush", Span.NONE);
  private final List<Op> ops = List.of(read, write, trim, zero, extents, cache, flush);

  /**
   * Where the report goes and how detailed it is.
   *
   * @param file null: the log
   * @param threshold the share of requests the size breakdown covers, in percent; 0 turns it off
   */
  record Reporting(Path file, boolean append, int threshold) {
    boolean breaksDown(Op op) {
      return threshold > 0 && op.span != Span.NONE;
    }
  }

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
        new Parameter("statsappend", "true|false", "Append to statsfile instead of replacing it (default false)."),
        new Parameter("statsthreshold", "PERCENT", "Break each operation down by request size and offset alignment, "
            + "showing the most common sizes until they cover PERCENT of its requests; 0 turns this off (default 95)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "statsfile" -> statsFile = Path.of(value);
      case "statsappend" -> append = Values.parseBool("stats: " + key, value);
      case "statsthreshold" -> threshold = Values.parseInt("stats: " + key, value, 0, 100);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    reporting = new Reporting(statsFile, append, threshold);
    startedNanos = System.nanoTime();
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new Counting(next.open(readOnly, exportName));
  }

  /** The report: elapsed time, the total, then one line per operation that was used. */
  List<String> report() {
    double elapsed = (System.nanoTime() - startedNanos) / 1e9;
    List<String> lines = new ArrayList<>();
    long totalRequests = 0;
    long totalBytes = 0;
    for (Op op : ops) {
      totalRequests += op.requests.sum();
      totalBytes += op.span == Span.DATA ? op.bytes.sum() : 0;
    }
    lines.add(String.format(Locale.ROOT, "elapsed time: %.3f s", elapsed));
    lines.add(String.format(Locale.ROOT, "total: %d ops, %s, %s/s", totalRequests, human(totalBytes), rate(totalBytes, elapsed)));
    for (Op op : ops) {
      long requests = op.requests.sum();
      if (requests == 0) {
        continue;
      }
      String amount = switch (op.span) {
        case DATA -> human(op.bytes.sum()) + ", " + rate(op.bytes.sum(), elapsed) + "/s, ";
        case RANGE -> "spanning " + human(op.bytes.sum()) + ", ";
        case NONE -> "";
      };
      lines.add(String.format(Locale.ROOT, "%s: %d ops, %s%d errors, %.3f s in requests", op.name, requests,
          amount, op.errors.sum(), op.nanos.sum() / 1e9));
      if (reporting.breaksDown(op)) {
        lines.addAll(op.histogram.lines(reporting.threshold()));
      }
    }
    return lines;
  }

  private static String rate(long bytes, double elapsed) {
    return human(elapsed > 0 ? (long) (bytes / elapsed) : 0);
  }

  static String human(long bytes) {
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
    if (reporting.file() == null) {
      lines.forEach(line -> log.info("stats: {}", line));
      return;
    }
    try {
      Files.writeString(reporting.file(), String.join("\n", lines) + "\n", StandardCharsets.UTF_8,
          StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          reporting.append() ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING);
    } catch (IOException e) {
      log.warn("stats: cannot write {}: {}", reporting.file(), e.getMessage());
      lines.forEach(line -> log.info("stats: {}", line));
    }
  }

  private interface Call {
    void run() throws IOException;
  }

  private final class Counting extends FilterExport {
    Counting(Export next) {
      super(next);
    }

    /** Runs one request below and counts it, failed or not, under {@code op}. */
    private void count(Op op, long offset, long length, Call call) throws IOException {
      long started = System.nanoTime();
      boolean failed = true;
      try {
        call.run();
        failed = false;
      } finally {
        record(op, offset, length, started, failed);
      }
    }

    private void record(Op op, long offset, long length, long started, boolean failed) {
      op.requests.increment();
      op.bytes.add(length);
      op.nanos.add(System.nanoTime() - started);
      if (failed) {
        op.errors.increment();
      }
      if (reporting.breaksDown(op)) {
        op.histogram.record(offset, length);
      }
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      count(read, offset, buffer.remaining(), () -> next.pread(buffer, offset));
    }

    /**
     * Counted when the layer below hands the bytes over or fails; when it answers null, the
     * {@link #pread} that follows is counted instead. The time is that of handing over: the
     * bytes are read as the reply goes out.
     */
    @Override
    public ReadData readData(long offset, int length) throws IOException {
      long started = System.nanoTime();
      ReadData data;
      try {
        data = next.readData(offset, length);
      } catch (IOException | RuntimeException | Error e) {
        record(read, offset, length, started, true);
        throw e;
      }
      if (data != null) {
        record(read, offset, length, started, false);
      }
      return data;
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      count(write, offset, buffer.remaining(), () -> next.pwrite(buffer, offset, flags));
    }

    @Override
    public void flush() throws IOException {
      count(flush, 0, 0, next::flush);
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      count(trim, offset, length, () -> next.trim(offset, length, flags));
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      count(zero, offset, length, () -> next.zero(offset, length, flags));
    }

    @Override
    public void extents(long offset, long length, int flags, Extents out) throws IOException {
      count(extents, offset, length, () -> next.extents(offset, length, flags, out));
    }

    @Override
    public void cache(long offset, long length) throws IOException {
      count(cache, offset, length, () -> next.cache(offset, length));
    }
  }
}
