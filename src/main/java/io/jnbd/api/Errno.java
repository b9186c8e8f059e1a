package io.jnbd.api;

/**
 * The error codes a plugin or filter may report, with the values the NBD protocol puts on the
 * wire. Codes that NBD has no value for are mapped to the nearest one it has, as nbdkit does
 * (EROFS becomes EPERM, EDQUOT and EFBIG become ENOSPC).
 */
public enum Errno {
  EPERM(1),
  EIO(5),
  ENOMEM(12),
  EINVAL(22),
  ENOSPC(28),
  EOVERFLOW(75),
  ENOTSUP(95),
  ESHUTDOWN(108),
  /** Write to a read-only export: sent to the client as EPERM. */
  EROFS(1),
  /** Quota exceeded: sent to the client as ENOSPC. */
  EDQUOT(28),
  /** File too large: sent to the client as ENOSPC. */
  EFBIG(28);

  private final int wireValue;

  Errno(int wireValue) {
    this.wireValue = wireValue;
  }

  /** The value sent in an NBD reply. */
  public int wireValue() {
    return wireValue;
  }
}
