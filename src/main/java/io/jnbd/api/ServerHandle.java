package io.jnbd.api;

/**
 * What a layer may ask of the server that runs it; given once to every layer through {@link
 * Configurable#attach} before the first client.
 */
public interface ServerHandle {
  /**
   * Stops the server as SIGTERM does (nbdkit's {@code nbdkit_shutdown}): no new clients,
   * in-flight requests finish, then the server exits. Returns at once; safe from any thread,
   * including a request's.
   */
  void requestShutdown();
}
