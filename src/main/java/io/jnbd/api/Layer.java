package io.jnbd.api;

import java.io.IOException;
import java.util.List;

/**
 * Everything below a filter, seen as one thing: the next filter, or the plugin. This is all a
 * filter may call outside its own per-connection {@link Export}.
 */
public interface Layer {
  /**
   * Called for each new client before the handshake; throwing refuses the client, whose
   * connection is closed (nbdkit's {@code .preconnect}, used by access-control filters).
   */
  default void preconnect(Client client, boolean readOnly) throws IOException {}

  /**
   * Opens the export for one client connection.
   *
   * @param readOnly true when the server or client wants no writes
   * @param exportName the name the client asked for (already resolved: "" means default)
   */
  Export open(boolean readOnly, String exportName) throws IOException;

  /** The exports to list for NBD_OPT_LIST. */
  List<ExportDescription> listExports(boolean readOnly) throws IOException;

  /** The name that an empty export name stands for. */
  String defaultExport(boolean readOnly) throws IOException;
}
