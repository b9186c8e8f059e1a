package io.jnbd.filters.blocksize;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import java.io.IOException;
import java.util.List;

/**
 * The blocksize-policy filter: replaces the block-size constraints the layers below advertise.
 * The preferred size is the one that matters most in practice: nbdcopy raises its request size
 * (even an explicit {@code --request-size}) to it, so this filter is how a user, or a benchmark,
 * decides what request size clients send. The server enforces what is advertised: unaligned
 * requests and payloads over the maximum get EINVAL.
 */
public final class BlocksizePolicyFilter implements Filter {
  private Long minimum;
  private Long preferred;
  private Long maximum;
  private Policy policy = new Policy(null, null, null);

  /**
   * The configured sizes, null where the layer below decides; checked against each other and
   * against the default constraints when built.
   */
  record Policy(Long minimum, Long preferred, Long maximum) {
    private static final long LIMIT = 0xFFFF_FFFFL;

    Policy {
      check("blocksize-minimum", minimum);
      check("blocksize-preferred", preferred);
      check("blocksize-maximum", maximum);
      try {
        merge(minimum, preferred, maximum, BlockSize.DEFAULT);
      } catch (IllegalArgumentException e) {
        throw new ConfigException("blocksize-policy: " + e.getMessage());
      }
    }

    private static void check(String key, Long size) {
      if (size != null && (size < 1 || size > LIMIT)) {
        throw new ConfigException("blocksize-policy: " + key + ": must be between 1 and 4294967295: " + size);
      }
    }

    /**
     * The constraints below, with the configured ones in their place; a size taken from below is
     * raised to fit a larger configured one (a minimum of 16K makes a preferred 4K from below 16K).
     */
    BlockSize merge(BlockSize below) {
      return merge(minimum, preferred, maximum, below != null ? below : BlockSize.DEFAULT);
    }

    // Static: the compact constructor checks its parameters before the fields are set.
    private static BlockSize merge(Long minimum, Long preferred, Long maximum, BlockSize base) {
      long min = minimum != null ? minimum : base.minimum();
      long pref = preferred != null ? preferred : Math.max(min, base.preferred());
      long max = maximum != null ? maximum : Math.max(pref, base.maximum());
      return new BlockSize((int) min, (int) pref, (int) max);
    }
  }

  @Override
  public String name() {
    return "blocksize-policy";
  }

  @Override
  public String description() {
    return "set the block-size constraints advertised to clients";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("blocksize-minimum", "SIZE", "Smallest alignment clients must use: a power of 2 up to 64K (default: from the layer below)."),
        new Parameter("blocksize-preferred", "SIZE", "Request size clients should use: a power of 2, at least 512 (default: from the layer below)."),
        new Parameter("blocksize-maximum", "SIZE", "Largest READ or WRITE payload accepted, at least the preferred size (default: from the layer below)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "blocksize-minimum" -> minimum = Values.parseSize("blocksize-policy: " + key, value);
      case "blocksize-preferred" -> preferred = Values.parseSize("blocksize-policy: " + key, value);
      case "blocksize-maximum" -> maximum = Values.parseSize("blocksize-policy: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    policy = new Policy(minimum, preferred, maximum);
  }

  /** The constraints below with the configured ones in their place. */
  BlockSize merge(BlockSize below) {
    return policy.merge(below);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new FilterExport(next.open(readOnly, exportName), FilterExport.Reads.UNTOUCHED) {
      @Override
      public BlockSize blockSize() throws IOException {
        try {
          return merge(next.blockSize());
        } catch (IllegalArgumentException e) {
          throw new ConfigException("blocksize-policy: does not fit the layer below: " + e.getMessage());
        }
      }
    };
  }
}
