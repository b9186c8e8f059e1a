package io.jnbd.api;

/**
 * Per-request flags passed to {@link Export} operations, as bits of one {@code int} so a filter
 * can pass them on untouched. Not every flag applies to every operation; the server only sets a
 * flag when the export advertised support for it.
 */
public final class Flags {
  /** Force unit access: the data must be durable when the call returns (write, trim, zero). */
  public static final int FUA = 1;
  /** Zero may leave a hole instead of allocating (the client did not send NO_HOLE). */
  public static final int MAY_TRIM = 2;
  /** Zero must fail quickly with ENOTSUP rather than fall back to something slow. */
  public static final int FAST_ZERO = 4;
  /** Extents: the client wants only the first extent (NBD_CMD_FLAG_REQ_ONE). */
  public static final int REQ_ONE = 8;

  private Flags() {}

  public static boolean has(int flags, int flag) {
    return (flags & flag) != 0;
  }
}
