package io.jnbd.filters.log;

import static io.jnbd.filters.log.LogFilter.bit;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * One connection through the log filter: a Connect line with what the export below offers when
 * it opens, two lines per request (the call, then its result, matched by a per-connection id),
 * and a Disconnect line with the number of requests when it closes.
 */
final class LoggedExport extends FilterExport {
  private final LogFile file;
  private final String connection;
  private final AtomicLong ids = new AtomicLong();

  /** One request's work below. */
  @FunctionalInterface
  private interface Call {
    void run() throws IOException;
  }

  LoggedExport(Export next, LogFile file, long connection, String exportName) throws IOException {
    super(next);
    this.file = file;
    this.connection = "connection=" + connection + " ";
    BlockSize sizes = next.blockSize();
    file.write(this.connection + "Connect export=" + LogFile.quote(exportName) + " tls=0"
        + " size=" + hex(next.size())
        + " minsize=" + hex(sizes == null ? 0 : sizes.minimum())
        + " prefsize=" + hex(sizes == null ? 0 : sizes.preferred())
        + " maxsize=" + hex(sizes == null ? 0 : Integer.toUnsignedLong(sizes.maximum()))
        + " write=" + bit(next.canWrite()) + " flush=" + bit(next.canFlush())
        + " rotational=" + bit(next.isRotational()) + " trim=" + bit(next.canTrim())
        + " zero=" + level(next.canZero()) + " fua=" + level(next.canFua())
        + " extents=" + bit(next.canExtents()) + " cache=" + level(next.canCache())
        + " fast_zero=" + bit(next.canFastZero()));
  }

  private static String hex(long value) {
    return "0x" + Long.toHexString(value);
  }

  /** nbdkit's numbers for none, emulated and native support. */
  private static int level(Support support) {
    return support.ordinal();
  }

  private static String range(long offset, long count) {
    return "offset=" + hex(offset) + " count=" + hex(count);
  }

  private static String flag(String name, int flags, int flag) {
    return " " + name + "=" + bit(Flags.has(flags, flag));
  }

  /** Logs the call, runs it, logs its result (with {@code detail} before it on success). */
  private void logged(String action, String arguments, Call call, Supplier<String> detail)
      throws IOException {
    String event = called(action, arguments);
    try {
      call.run();
    } catch (IOException | RuntimeException e) {
      failed(event, e);
      throw e;
    }
    String extra = detail == null ? "" : detail.get() + " ";
    file.write(connection + "..." + event + " " + extra + "return=0");
  }

  /** Logs a call with a new id, and returns the event that its result line repeats. */
  private String called(String action, String arguments) {
    String event = action + " id=" + ids.incrementAndGet();
    file.write(connection + event + (arguments.isEmpty() ? "" : " " + arguments) + " ...");
    return event;
  }

  private void failed(String event, Exception e) {
    file.write(connection + "..." + event + " " + LogFilter.failure(e));
  }

  private void logged(String action, String arguments, Call call) throws IOException {
    logged(action, arguments, call, null);
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    logged("Read", range(offset, buffer.remaining()), () -> next.pread(buffer, offset));
  }

  /**
   * A READ whose bytes the layer below hands over is logged once it has answered, both lines
   * at once; when it answers null, the {@link #pread} that follows is logged instead.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    ReadData data;
    try {
      data = next.readData(offset, length);
    } catch (IOException | RuntimeException e) {
      failed(called("Read", range(offset, length)), e);
      throw e;
    }
    if (data != null) {
      logged("Read", range(offset, length), () -> {});
    }
    return data;
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    logged("Write", range(offset, buffer.remaining()) + flag("fua", flags, Flags.FUA), () -> next.pwrite(buffer, offset, flags));
  }

  @Override
  public void flush() throws IOException {
    logged("Flush", "", next::flush);
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    logged("Trim", range(offset, length) + flag("fua", flags, Flags.FUA), () -> next.trim(offset, length, flags));
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    logged("Zero", range(offset, length) + flag("trim", flags, Flags.MAY_TRIM) + flag("fua", flags, Flags.FUA)
        + flag("fast", flags, Flags.FAST_ZERO), () -> next.zero(offset, length, flags));
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    logged("Extents", range(offset, length) + flag("req_one", flags, Flags.REQ_ONE),
        () -> next.extents(offset, length, flags, extents), () -> describe(extents));
  }

  /** The extents reported, as nbdkit lists them: offset, length, "type" for each. */
  private static String describe(Extents extents) {
    StringBuilder out = new StringBuilder("extents=(");
    long at = extents.start();
    for (int i = 0; i < extents.count(); i++) {
      out.append(i > 0 ? " " : "").append(hex(at)).append(' ').append(hex(extents.length(i)))
          .append(" \"").append(type(extents.type(i))).append('"');
      at += extents.length(i);
    }
    return out.append(')').toString();
  }

  private static String type(int type) {
    return switch (type) {
      case Extents.HOLE_ZERO -> "hole,zero";
      case Extents.HOLE -> "hole";
      case Extents.ZERO -> "zero";
      default -> "";
    };
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    logged("Cache", range(offset, length), () -> next.cache(offset, length));
  }

  @Override
  public void close() throws IOException {
    file.write(connection + "Disconnect transactions=" + ids.get());
    next.close();
  }
}
