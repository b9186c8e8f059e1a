package io.jnbd.api;

/**
 * The block-size constraints an export advertises in NBD_INFO_BLOCK_SIZE.
 *
 * @param minimum smallest request alignment, a power of two from 1 to 64 KiB
 * @param preferred the size of request the export handles best, a power of two at least 512 and
 *     at least {@code minimum}; nbdcopy raises its request size to this
 * @param maximum the largest READ or WRITE payload accepted, at least {@code preferred}
 */
public record BlockSize(int minimum, int preferred, int maximum) {
  /** What jnbd advertises when no layer says otherwise; 32 MiB is the protocol's safe maximum. */
  public static final BlockSize DEFAULT = new BlockSize(1, 4096, 32 * 1024 * 1024);

  public BlockSize {
    if (Integer.bitCount(minimum) != 1 || minimum > 65536) {
      throw new IllegalArgumentException("minimum block size must be a power of 2 up to 64K: " + minimum);
    }
    if (Integer.bitCount(preferred) != 1 || preferred < Math.max(512, minimum)) {
      throw new IllegalArgumentException("preferred block size must be a power of 2, at least 512 and the minimum: " + preferred);
    }
    if (Integer.compareUnsigned(maximum, preferred) < 0) {
      throw new IllegalArgumentException("maximum block size must be at least the preferred size: " + maximum);
    }
  }
}
