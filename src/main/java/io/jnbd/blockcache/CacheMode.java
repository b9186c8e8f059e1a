package io.jnbd.blockcache;

import io.jnbd.api.ConfigException;
import java.util.Locale;

/** When writes reach the layer below the cache, as nbdkit's cache filter names it. */
public enum CacheMode {
  /** Writes stay in the cache; dirty blocks go below on flush, FUA or eviction. */
  WRITEBACK,
  /** Writes go below at once and update cached copies. */
  WRITETHROUGH,
  /** Like writeback, but flush is ignored: fast, and unflushed data is lost at exit. */
  UNSAFE;

  public static CacheMode parse(String key, String text) {
    try {
      return valueOf(text.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new ConfigException("cache: " + key + " must be writeback, writethrough or unsafe: '" + text + "'");
    }
  }
}
