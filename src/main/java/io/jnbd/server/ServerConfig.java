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
 * @param handshake what the handshake offers ({@code --mask-handshake}, {@code --no-sr},
 *     {@code --no-meta-contexts})
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
    Duration stalledReplyLimit,
    Handshake handshake) {

  /**
   * What the handshake offers, for testing clients against servers that lack a feature, as
   * nbdkit's options of the same names do.
   *
   * @param flagMask the handshake flags that may be advertised (see {@link #ALL_FLAGS})
   * @param structuredReplies whether STRUCTURED_REPLY is accepted; without it, no meta contexts
   *     either, as they need structured replies
   * @param metaContexts whether LIST_META_CONTEXT and SET_META_CONTEXT are answered
   */
  public record Handshake(int flagMask, boolean structuredReplies, boolean metaContexts) {
    /** Bit 0: fixed newstyle; bit 1: no zeroes (the protocol's own bits, as nbdkit numbers them). */
    public static final int ALL_FLAGS = 3;
    public static final Handshake FULL = new Handshake(ALL_FLAGS, true, true);
  }

  public static final int DEFAULT_MAX_REQUESTS = 64;
  /** qemu-nbd's default: long enough for any real client, short for one that never speaks. */
  public static final Duration DEFAULT_HANDSHAKE_LIMIT = Duration.ofSeconds(10);
  /** Each connection has a platform thread of its own: this keeps a flood from exhausting them. */
  public static final int DEFAULT_MAX_CONNECTIONS = 1024;
  /** Long for a client that reads at all (any progress resets it), short for the others waiting. */
  public static final Duration DEFAULT_STALLED_REPLY_LIMIT = Duration.ofSeconds(3);

  public static ServerConfig defaults() {
    return new ServerConfig(false, null, DEFAULT_MAX_REQUESTS, false, Duration.ofSeconds(5), MemoryBudget.defaultCapacity(),
        DEFAULT_HANDSHAKE_LIMIT, DEFAULT_MAX_CONNECTIONS, DEFAULT_STALLED_REPLY_LIMIT, Handshake.FULL);
  }

  public ServerConfig withReadOnly(boolean value) {
    return new ServerConfig(value, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withExportName(String value) {
    return new ServerConfig(readOnly, value, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withMaxRequestsPerConnection(int value) {
    return new ServerConfig(readOnly, exportName, value, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withVerbose(boolean value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, value, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withShutdownGrace(Duration value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, value, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withMemoryBudget(long value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, value, handshakeLimit, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withHandshakeLimit(Duration value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, value, maxConnections, stalledReplyLimit, handshake);
  }

  public ServerConfig withMaxConnections(int value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, value, stalledReplyLimit, handshake);
  }

  public ServerConfig withStalledReplyLimit(Duration value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, value, handshake);
  }

  public ServerConfig withHandshake(Handshake value) {
    return new ServerConfig(readOnly, exportName, maxRequestsPerConnection, verbose, shutdownGrace, memoryBudget, handshakeLimit, maxConnections, stalledReplyLimit, value);
  }
}
