package io.jnbd.filters.readahead;

import io.jnbd.api.ConfigException;

/**
 * The readahead filter's tunables (see {@link ReadaheadFilter#parameters()} for their keys).
 *
 * @param window the prefetch window once a stream is confirmed
 * @param maxWindow the ceiling of the window, whatever the measurements say
 * @param chunk the size of each prefetch request sent below
 * @param maxInFlight prefetch requests outstanding at once per export
 * @param confirm advancing reads a stream needs before prefetching starts
 * @param streams sequential streams tracked per export
 * @param cacheSize the built-in cache used when the layer below has no native cache
 */
record ReadaheadSettings(
    long window, long maxWindow, long chunk, int maxInFlight, int confirm, int streams, long cacheSize) {

  /** Checks the settings against each other; the messages name the filter's keys. */
  ReadaheadSettings {
    positive("readahead-window", window);
    positive("readahead-max-window", maxWindow);
    positive("readahead-chunk", chunk);
    positive("readahead-cache-size", cacheSize);
    if (chunk > 32L << 20) {
      throw new ConfigException("readahead: readahead-chunk: at most 32M");
    }
    if (window > maxWindow) {
      throw new ConfigException("readahead: readahead-window must not exceed readahead-max-window");
    }
    if (maxInFlight < 1 || confirm < 1 || streams < 1) {
      throw new ConfigException("readahead: readahead-max-in-flight, readahead-confirm and readahead-streams must be at least 1");
    }
  }

  static ReadaheadSettings defaults() {
    return new ReadaheadSettings(1L << 20, 32L << 20, 4L << 20, 8, 2, 8, 64L << 20);
  }

  private static void positive(String key, long size) {
    if (size <= 0) {
      throw new ConfigException("readahead: " + key + ": must be greater than 0");
    }
  }

  ReadaheadSettings withMaxWindow(long value) {
    return new ReadaheadSettings(window, value, chunk, maxInFlight, confirm, streams, cacheSize);
  }
}
