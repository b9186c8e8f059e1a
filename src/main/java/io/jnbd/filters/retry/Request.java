package io.jnbd.filters.retry;

import io.jnbd.api.Errno;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import java.io.IOException;
import java.util.Locale;

/** What a retried request asks of the export below, so an attempt can be checked against it. */
record Request(Operation operation, long offset, long length, int flags) {
  enum Operation {
    PREAD,
    PWRITE,
    TRIM,
    ZERO,
    FLUSH,
    EXTENTS,
    CACHE;

    boolean writes() {
      return this == PWRITE || this == TRIM || this == ZERO;
    }

    String label() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  /**
   * Whether a failure may go away on another attempt. A zero that answers ENOTSUP has not
   * failed: it tells the server to write zeroes instead (or the client that a fast zero would
   * not be fast), and asking again would get the same answer after a long wait.
   */
  boolean worthRetrying(IOException failure) {
    return !(operation == Operation.ZERO && NbdException.errnoOf(failure) == Errno.ENOTSUP);
  }

  boolean has(int flag) {
    return Flags.has(flags, flag);
  }

  @Override
  public String toString() {
    return operation.label() + " " + length + "@" + offset;
  }
}
