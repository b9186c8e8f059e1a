package io.jnbd.filters.rate;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Values;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a rate comes from: the configured value, or a file that may change it while the server
 * runs (rate-file, connection-rate-file). The file is read when the server starts and then at
 * most once per {@link #RECHECK_NANOS} as requests ask; a missing or unreadable file keeps the
 * rate in force, so deleting it keeps the last one read.
 */
final class RateSource {
  private static final Logger log = LoggerFactory.getLogger(RateSource.class);
  /** How stale a rate read from the file may be. */
  static final long RECHECK_NANOS = 1_000_000_000L;

  private final String key;
  private final Path file;
  private final LongSupplier clock;
  private long rate;
  private long checkedAt;

  /**
   * @param key the file's parameter, for messages
   * @param rate the configured rate, 0 for none
   * @param file the rate file, or null
   */
  RateSource(String key, long rate, Path file, LongSupplier clock) {
    this.key = key;
    this.file = file;
    this.clock = clock;
    this.rate = rate;
    if (file != null) {
      reread(clock.getAsLong());
    }
  }

  /** The rate in bits per second now, 0 for no limit. */
  synchronized long current() {
    if (file != null) {
      long now = clock.getAsLong();
      if (now - checkedAt >= RECHECK_NANOS) {
        reread(now);
      }
    }
    return rate;
  }

  private void reread(long now) {
    checkedAt = now;
    String text;
    try {
      text = Files.readString(file, StandardCharsets.UTF_8).trim();
    } catch (IOException e) {
      return;
    }
    try {
      long read = Values.parseSize(key, text);
      if (read != rate) {
        log.debug("rate: {} changes the rate from {} to {} bits/s", file, rate, read);
        rate = read;
      }
    } catch (ConfigException e) {
      log.warn("rate: ignoring {}: {}", file, e.getMessage());
    }
  }
}
