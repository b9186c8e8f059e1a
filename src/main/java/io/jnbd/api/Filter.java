package io.jnbd.api;

import java.io.IOException;
import java.util.List;

/**
 * A layer between the server and the plugin. One instance per server, configured with the keys
 * it claims (see {@link Configurable#config}); state shared by all connections (a cache, the
 * readahead streams) lives in the instance, per-connection state in the {@link Export} that
 * {@link #open} returns, usually a {@link FilterExport} around the export below.
 *
 * <p>Every method has a pass-through default, so a filter overrides only what it changes.
 * Filters are found by name through {@link java.util.ServiceLoader} ({@code
 * META-INF/services/io.jnbd.api.Filter}) or by class name.
 */
public interface Filter extends Configurable {
  @Override
  default boolean config(String key, String value) {
    return false;
  }

  /**
   * Called once after configuration with the thread model of the layers below this filter, so
   * a filter that needs concurrency below (readahead) can turn itself off where it cannot help.
   * The server enforces that model on every call through {@code next}, from any thread.
   */
  default void threadModelBelow(ThreadModel below) {}

  /** A new client, before the handshake: throw to refuse it, or let the layers below decide. */
  default void preconnect(Layer next, Client client, boolean readOnly) throws IOException {
    next.preconnect(client, readOnly);
  }

  /**
   * Opens this filter's view of an export for one connection. {@code next} opens the layer
   * below; the export it returns is the server's link to that layer, the only way down.
   */
  default Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return next.open(readOnly, exportName);
  }

  default List<ExportDescription> listExports(Layer next, boolean readOnly) throws IOException {
    return next.listExports(readOnly);
  }

  default String defaultExport(Layer next, boolean readOnly) throws IOException {
    return next.defaultExport(readOnly);
  }
}
