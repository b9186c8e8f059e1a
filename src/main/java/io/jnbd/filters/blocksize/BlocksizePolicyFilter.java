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
  private static final long LIMIT = 0xFFFF_FFFFL;
  private Long minimum;
  private Long preferred;
  private Long maximum;

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
      case "blocksize-minimum" -> minimum = parse(key, value);
      case "blocksize-preferred" -> preferred = parse(key, value);
      case "blocksize-maximum" -> maximum = parse(key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  private static long parse(String key, String value) {
    long size = Values.parseSize(name(key), value);
    if (size < 1 || size > LIMIT) {
      throw new ConfigException(name(key) + ": must be between 1 and 4294967295: " + value);
    }
    return size;
  }

  private static String name(String key) {
    return "blocksize-policy: " + key;
  }

  @Override
  public void configComplete() {
    // Checks the configured values against each other; the layer below fills the rest at open.
    try {
      merge(null);
    } catch (IllegalArgumentException e) {
      throw new ConfigException("blocksize-policy: " + e.getMessage());
    }
  }

  /**
   * The constraints below, with the configured ones in their place; a size taken from below is
   * raised to fit a larger configured one (a minimum of 16K makes a preferred 4K from below 16K).
   */
  BlockSize merge(BlockSize below) {
    BlockSize base = below != null ? below : BlockSize.DEFAULT;
    long min = minimum != null ? minimum : base.minimum();
    long pref = preferred != null ? preferred : Math.max(min, base.preferred());
    long max = maximum != null ? maximum : Math.max(pref, base.maximum());
    return new BlockSize((int) min, (int) pref, (int) max);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new FilterExport(next.open(readOnly, exportName)) {
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
