package io.jnbd.api;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One client connection's view of an export: what a plugin returns from {@link Layer#open} and
 * what a filter wraps. Methods may be called from many threads at once, up to the layer's
 * {@link ThreadModel}.
 *
 * <p>The server checks every request before it gets here: offsets and lengths are inside the
 * export, writes only reach an export that said {@link #canWrite()}, and flags are only set
 * when the matching capability was advertised. A layer therefore need not re-check them.
 *
 * <p>Capabilities are asked once per connection, after open. The defaults describe a read-only
 * export with no optional features; a plugin overrides what it supports. Filters should extend
 * {@link FilterExport}, which passes everything through to the layer below.
 */
public interface Export extends AutoCloseable {

  /** The export size in bytes. Asked once per connection. */
  long size() throws IOException;

  /**
   * Fills {@code buffer} from its position to its limit with the bytes at {@code offset}, and
   * leaves its position at the limit. A short read is an error, not an option.
   */
  void pread(ByteBuffer buffer, long offset) throws IOException;

  /**
   * Optionally answers a READ without copying its bytes into a buffer: returns them as a file
   * region, read-only views of memory this layer keeps valid until the server closes them, or
   * zeroes ({@link ReadData}), or null to have the server call {@link #pread} instead, which is
   * the default. The result must hold exactly the bytes that {@code pread} would give, and
   * exactly {@code length} of them ({@code length} &gt; 0). The server asks only where it can use
   * the answer (not over a vsock connection, say), so a layer must still implement {@code pread}.
   *
   * <p>A filter's export ({@link FilterExport}) does not pass this on unless it says so, since a
   * filter that changes or moves data would be bypassed: see {@link FilterExport#readData}.
   */
  default ReadData readData(long offset, int length) throws IOException {
    return null;
  }

  /** Writes the remaining bytes of {@code buffer} at {@code offset}. Flags: {@link Flags#FUA}. */
  default void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    throw new NbdException(Errno.EROFS, "export is read-only");
  }

  /** Makes all completed writes durable. */
  default void flush() throws IOException {
    throw new NbdException(Errno.EINVAL, "flush is not supported");
  }

  /** Hints that a range is no longer needed; it may read back as anything. Flags: FUA. */
  default void trim(long offset, long length, int flags) throws IOException {
    throw new NbdException(Errno.EINVAL, "trim is not supported");
  }

  /**
   * Makes a range read back as zeroes. Flags: {@link Flags#FUA}, {@link Flags#MAY_TRIM} (a
   * hole is acceptable), {@link Flags#FAST_ZERO} (throw ENOTSUP unless this is fast). Throwing
   * ENOTSUP without FAST_ZERO lets the server fall back to writing zeroes.
   */
  default void zero(long offset, long length, int flags) throws IOException {
    throw new NbdException(Errno.ENOTSUP, "zero is not supported");
  }

  /** Reports the allocation status of the range (flags: {@link Flags#REQ_ONE}). */
  default void extents(long offset, long length, int flags, Extents extents) throws IOException {
    extents.add(offset, length, Extents.DATA);
  }

  /** Hints that the range will be read soon; a layer with a cache fills it. */
  default void cache(long offset, long length) throws IOException {}

  default boolean canWrite() throws IOException {
    return false;
  }

  default boolean canFlush() throws IOException {
    return false;
  }

  /** How force-unit-access is honoured; by default a flush after the write when flush exists. */
  default Support canFua() throws IOException {
    return canFlush() ? Support.EMULATE : Support.NONE;
  }

  default boolean canTrim() throws IOException {
    return false;
  }

  /** How zero is done; by default the server writes zeroes when the export is writable. */
  default Support canZero() throws IOException {
    return canWrite() ? Support.EMULATE : Support.NONE;
  }

  /** True when {@link #zero} honours {@link Flags#FAST_ZERO}, failing fast when it would be slow. */
  default boolean canFastZero() throws IOException {
    return false;
  }

  /** True when {@link #extents} reports real allocation rather than "all data". */
  default boolean canExtents() throws IOException {
    return false;
  }

  /** How NBD_CMD_CACHE is honoured; NONE means the command is not advertised. */
  default Support canCache() throws IOException {
    return Support.NONE;
  }

  /**
   * True when every connection to this export sees one consistent store, so a flush on one
   * connection covers writes made on any other. Clients such as nbdcopy open several
   * connections only when this is true.
   */
  default boolean canMultiConn() throws IOException {
    return false;
  }

  default boolean isRotational() throws IOException {
    return false;
  }

  /** The block-size constraints to advertise, or null for the server's default. */
  default BlockSize blockSize() throws IOException {
    return null;
  }

  /** Releases this connection's resources; called once when the client disconnects. */
  @Override
  default void close() throws IOException {}
}
