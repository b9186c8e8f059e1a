package io.jnbd.filters.readahead;

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

  static ReadaheadSettings defaults() {
    return new ReadaheadSettings(1L << 20, 32L << 20, 4L << 20, 8, 2, 8, 64L << 20);
  }

  ReadaheadSettings withMaxWindow(long value) {
    return new ReadaheadSettings(window, value, chunk, maxInFlight, confirm, streams, cacheSize);
  }
}
