package io.jnbd.api;

/**
 * How much concurrency a plugin or filter accepts, least to most; the server uses the most
 * restrictive model of the whole stack. The names and meanings are nbdkit's.
 */
public enum ThreadModel {
  /** One connection at a time; further clients wait until it closes. */
  SERIALIZE_CONNECTIONS,
  /** Many connections, but only one request at a time across all of them. */
  SERIALIZE_ALL_REQUESTS,
  /** One request at a time on each connection; different connections run in parallel. */
  SERIALIZE_REQUESTS,
  /** Any number of requests at once, on any connection. */
  PARALLEL;

  public ThreadModel mostRestrictive(ThreadModel other) {
    return compareTo(other) <= 0 ? this : other;
  }
}
