package io.jnbd.filters.retry;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import io.jnbd.filters.retry.Request.Operation;
import java.io.IOException;

/**
 * What an export offers, asked once when it opens. The retry filters advertise what the first
 * export offered for the whole connection, as the client was told; the retry filter also checks
 * each request against what a reopened export offers, since that one may offer less (opened
 * read-only, or a remote that changed), and fails a request it cannot serve instead of sending
 * it to a layer that never offered the operation.
 */
record Offer(long size, boolean write, boolean flush, Support fua, boolean trim, Support zero,
    boolean fastZero, boolean extents, Support cache, boolean multiConn, boolean rotational,
    BlockSize blockSize) {

  static Offer of(Export export) throws IOException {
    return new Offer(export.size(), export.canWrite(), export.canFlush(), export.canFua(),
        export.canTrim(), export.canZero(), export.canFastZero(), export.canExtents(),
        export.canCache(), export.canMultiConn(), export.isRotational(), export.blockSize());
  }

  /** Throws, with the error nbdkit's retry filter gives, if this export cannot serve the request. */
  void check(Request request) throws NbdException {
    Operation operation = request.operation();
    if (operation != Operation.FLUSH && request.offset() > size - request.length()) {
      throw unable(operation.writes() ? Errno.ENOSPC : Errno.EIO, request, "the reopened export has only " + size + " bytes");
    }
    if (operation.writes() && !write) {
      throw unable(Errno.EROFS, request, "the reopened export is read-only");
    }
    if (operation == Operation.TRIM && !trim || operation == Operation.FLUSH && !flush
        || request.has(Flags.FUA) && fua == Support.NONE) {
      throw unable(Errno.EIO, request, "the reopened export cannot do it");
    }
    if (request.has(Flags.FAST_ZERO) && !fastZero) {
      throw unable(Errno.ENOTSUP, request, "the reopened export has no fast zero");
    }
  }

  private static NbdException unable(Errno errno, Request request, String why) {
    return new NbdException(errno, "retry: " + request + ": " + why);
  }
}
