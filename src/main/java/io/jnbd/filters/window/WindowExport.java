package io.jnbd.filters.window;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves the bytes [start, start+length) of the layer below as a whole export: the offset and
 * partition filters are this window, placed by a parameter or by a partition table.
 */
public final class WindowExport extends FilterExport {
  private static final Logger log = LoggerFactory.getLogger(WindowExport.class);
  private final long start;
  private final long length;

  private WindowExport(Export next, long start, long length) {
    super(next);
    this.start = start;
    this.length = length;
  }

  /** A window's place in the layer below. */
  public record Span(long start, long length) {}

  /** Where a window lies in the layer below, found once the layer below is open. */
  @FunctionalInterface
  public interface Placement {
    /** The window's place in {@code below}; throws to refuse the client. */
    Span place(Export below) throws IOException;
  }

  /**
   * Opens the layer below and a window on it where {@code placement} puts it. A window that
   * does not lie inside the layer below, or a placement that fails, fails the client's open (as
   * nbdkit fails it: the size below is only known now) and closes what was opened.
   *
   * @param who the filter, for the error message
   */
  public static Export open(Layer next, boolean readOnly, String exportName, String who, Placement placement)
      throws IOException {
    Export below = next.open(readOnly, exportName);
    try {
      Span span = placement.place(below);
      long start = span.start();
      long length = span.length();
      long size = below.size();
      if (start < 0 || length < 0 || start > size || length > size - start) {
        throw new NbdException(Errno.EINVAL, who + ": the range " + start + "+" + length
            + " is outside the " + size + " bytes of the layer below");
      }
      return new WindowExport(below, start, length);
    } catch (IOException | RuntimeException e) {
      // The server passes the reason to the client only; like nbdkit, tell the operator too.
      log.warn("{}", e.getMessage());
      below.close();
      throw e;
    }
  }

  @Override
  public long size() {
    return length;
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    next.pread(buffer, start + offset);
  }

  /** The window moves bytes but leaves them alone: the layer below may hand them over. */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    return next.readData(start + offset, length);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    next.pwrite(buffer, start + offset, flags);
  }

  @Override
  public void trim(long offset, long count, int flags) throws IOException {
    next.trim(start + offset, count, flags);
  }

  @Override
  public void zero(long offset, long count, int flags) throws IOException {
    next.zero(start + offset, count, flags);
  }

  @Override
  public void cache(long offset, long count) throws IOException {
    next.cache(start + offset, count);
  }

  @Override
  public void extents(long offset, long count, int flags, Extents extents) throws IOException {
    Extents below = new Extents(start + offset, start + offset + count);
    next.extents(start + offset, count, flags, below);
    long at = offset;
    for (int i = 0; i < below.count(); i++) {
      extents.add(at, below.length(i), below.type(i));
      at += below.length(i);
    }
  }
}
