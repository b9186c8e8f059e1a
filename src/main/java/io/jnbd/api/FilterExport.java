package io.jnbd.api;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The base for a filter's per-connection export: every operation and capability goes to {@code
 * next}, the layer below, unless the subclass overrides it. A filter sees only {@code next}.
 * The one exception is {@link #readData}, the zero-copy read, which a filter must opt in to:
 * with {@link Reads#UNTOUCHED} when it has nothing to do with READs, or by overriding it.
 */
public abstract class FilterExport implements Export {
  protected final Export next;
  private final Reads reads;

  /** What a filter does with READs, which decides whether the zero-copy read passes it. */
  public enum Reads {
    /**
     * READs come through {@link #pread}, and {@link #readData} returns null unless the filter
     * overrides it: the default, as a filter may change, move, or act on the bytes it reads.
     */
    THROUGH_PREAD,
    /**
     * The filter neither changes nor moves the bytes of a READ, and does nothing on one ({@link
     * #pread} is not overridden): {@link #readData} is the layer below's, so a READ through this
     * filter may skip the copy. Its bytes are then read after the call returns, so a filter
     * whose reads must happen inside something it holds (a lock, a measured span) is not one.
     */
    UNTOUCHED
  }

  /** A filter export whose READs come through {@link #pread} ({@link Reads#THROUGH_PREAD}). */
  protected FilterExport(Export next) {
    this(next, Reads.THROUGH_PREAD);
  }

  protected FilterExport(Export next, Reads reads) {
    this.next = next;
    this.reads = reads;
  }

  @Override
  public long size() throws IOException {
    return next.size();
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    next.pread(buffer, offset);
  }

  /**
   * The layer below's answer for a filter constructed with {@link Reads#UNTOUCHED}; otherwise
   * null, so that READs come through {@link #pread}: passing the layer below's bytes straight to
   * the server would bypass whatever this filter does to them. A filter that leaves the bytes of
   * a read alone but does something on each (counts, times, paces reads) may override this to
   * return {@code next.readData(offset, length)}, with the offset mapped if the filter moves
   * data, and doing here what its {@code pread} does besides reading; {@link #readDataThen}
   * does that for work that follows the read.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    return reads == Reads.UNTOUCHED ? next.readData(offset, length) : null;
  }

  /** What a filter does on a READ besides reading it; see {@link #readDataThen}. */
  @FunctionalInterface
  protected interface ReadWork {
    void run() throws IOException;
  }

  /**
   * The layer below's {@code readData}, and then {@code work} if it handed the bytes over. When
   * it answers null, {@code work} does not run: the server calls {@link #pread} next, which does
   * it. When {@code work} throws, the bytes are given back and the READ fails with its error.
   */
  protected final ReadData readDataThen(long offset, int length, ReadWork work) throws IOException {
    ReadData data = next.readData(offset, length);
    if (data != null) {
      try {
        work.run();
      } catch (IOException | RuntimeException | Error e) {
        data.close();
        throw e;
      }
    }
    return data;
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    next.pwrite(buffer, offset, flags);
  }

  @Override
  public void flush() throws IOException {
    next.flush();
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    next.trim(offset, length, flags);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    next.zero(offset, length, flags);
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    next.extents(offset, length, flags, extents);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    next.cache(offset, length);
  }

  @Override
  public boolean canWrite() throws IOException {
    return next.canWrite();
  }

  @Override
  public boolean canFlush() throws IOException {
    return next.canFlush();
  }

  @Override
  public Support canFua() throws IOException {
    return next.canFua();
  }

  @Override
  public boolean canTrim() throws IOException {
    return next.canTrim();
  }

  @Override
  public Support canZero() throws IOException {
    return next.canZero();
  }

  @Override
  public boolean canFastZero() throws IOException {
    return next.canFastZero();
  }

  @Override
  public boolean canExtents() throws IOException {
    return next.canExtents();
  }

  @Override
  public Support canCache() throws IOException {
    return next.canCache();
  }

  @Override
  public boolean canMultiConn() throws IOException {
    return next.canMultiConn();
  }

  @Override
  public boolean isRotational() throws IOException {
    return next.isRotational();
  }

  @Override
  public BlockSize blockSize() throws IOException {
    return next.blockSize();
  }

  @Override
  public void close() throws IOException {
    next.close();
  }
}
