package io.jnbd.filters.exitlast;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.ServerHandle;
import io.jnbd.filters.ExportCount;
import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The exitlast filter (nbdkit's): the server exits when its last client disconnects, never
 * before the first has come. For a server started on demand, or one that should go with its
 * only client. It has no parameters.
 */
public final class ExitlastFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(ExitlastFilter.class);
  private volatile ServerHandle server;
  private final ExportCount clients = new ExportCount(this::clientLeft);

  @Override
  public String name() {
    return "exitlast";
  }

  @Override
  public String description() {
    return "exit when the last client disconnects";
  }

  @Override
  public void attach(ServerHandle server) {
    this.server = server;
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return clients.track(next.open(readOnly, exportName));
  }

  private void clientLeft(int stillConnected) {
    if (stillConnected == 0) {
      log.debug("exitlast: the last client disconnected, exiting");
      server.requestShutdown();
    }
  }
}
