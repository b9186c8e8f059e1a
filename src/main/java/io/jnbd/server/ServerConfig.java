package io.jnbd.server;

import java.time.Duration;

/**
 * Server-wide settings that do not belong to any plugin or filter.
 *
 * @param readOnly serve every export read-only ({@code -r}), whatever the plugin can do
 * @param exportName the name that the server's default export is known by ({@code -e}); null
 *     means the plugin's own default
 * @param maxRequestsPerConnection requests processed at once on one connection ({@code -t});
 *     further requests wait in the socket, which pushes back on the client
 * @param verbose log every request ({@code -v})
 * @param shutdownGrace how long in-flight requests may finish when the server stops
 * @param memoryBudget bytes that requests may hold at once for their data, over all connections;
 *     requests beyond it wait (see {@link MemoryBudget})
 * @param handshakeLimit how long a client may take from connecting to finishing the handshake
 *     before it is dropped ({@code --handshake-limit}, qemu-nbd's name); zero means no limit
 * @param maxConnections clients served at once; further ones are accepted and closed at once
 *     ({@code --max-connections})
 * @param stalledReplyLimit while the memory budget is exhausted, a client whose reply has not
 *     moved for this long is dropped, freeing what its replies hold
 */
public record ServerConfig(
    boolean readOnly,
    String exportName,
    int maxRequestsPerConnection,
    boolean verbose,
    Duration shutdownGrace,
    long memoryBudget,
    Duration handshakeLimit,
    int maxConnections,
    Duration stalledReplyLimit) {

  public static final int DEFAULT_MAX_REQUESTS = 64;
  /** qemu-nbd's default: long enough for any real client, short for one that never speaks. */
  public static final Duration DEFAULT_HANDSHAKE_LIMIT = Duration.ofSeconds(10);
  /** Each connection has a platform thread of its own: this keeps a flood from exhausting them. */
  public static final int DEFAULT_MAX_CONNECTIONS = 1024;
  /** Long for a client that reads at all (any progress resets it), short for the others waiting. */
  public static final Duration DEFAULT_STALLED_REPLY_LIMIT = Duration.ofSeconds(3);

  public static ServerConfig defaults() {
    return new ServerConfig(false, null, DEFAULT_MAX_REQUESTS, false, Duration.ofSeconds(5), MemoryBudget.defaultCapacity(),
        DEFAULT_HANDSHAKE_LIMIT, DEFAULT_MAX_CONNECTIONS, DEFAULT_STALLED_REPLY_LIMIT);
  }

  public ServerConfig withReadOnly(boolean value) {
    return new ServerConfig(value, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withExportName(String value) {
    return new ServerConfig(readOnly, value, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withMaxRequestsPerConnection(int value) {
    return new ServerConfig(readOnly, exportName, value, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withVerbose(boolean value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, value, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withShutdownGrace(Duration value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, value, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withMemoryBudget(long value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, value, handshakeLimit, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withHandshakeLimit(Duration value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, value, maxConnections, stalledReplyLimit);
  }

  public ServerConfig withMaxConnections(int value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, value, stalledReplyLimit);
  }

  public ServerConfig withStalledReplyLimit(Duration value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, value);
  }
}
