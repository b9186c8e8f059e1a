package io.jnbd.api;

/**
 * How a layer supports an operation that the server can also emulate (FUA, zero, cache): not at
 * all, by the server's emulation on top of other operations, or natively. nbdkit's
 * NBDKIT_FUA_*, NBDKIT_ZERO_* and NBDKIT_CACHE_* values play the same role.
 *
 * <ul>
 *   <li>FUA: {@code EMULATE} means the server follows a write with a flush.
 *   <li>zero: {@code EMULATE} means the server writes buffers of zeroes (never for fast zero).
 *   <li>cache: {@code EMULATE} means the server reads the range and discards the data.
 * </ul>
 */
public enum Support {
  NONE,
  EMULATE,
  NATIVE
}
