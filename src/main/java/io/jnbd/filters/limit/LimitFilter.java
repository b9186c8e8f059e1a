package io.jnbd.filters.limit;

import io.jnbd.api.Client;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.ExportCount;
import java.io.IOException;
import java.util.List;

/**
 * The limit filter (nbdkit's): refuses clients while {@code limit} of them are connected. A
 * client counts from the export's open to its close. It is refused before the handshake when the
 * limit is already reached, and again at open, where a client that held back its handshake while
 * others connected is caught.
 */
public final class LimitFilter implements Filter {
  private int limit = 1;
  private Limit clientLimit = new Limit(limit);
  private final ExportCount clients = new ExportCount(stillOpen -> {});

  /** @param clients the most clients connected at once; 0 for no limit */
  record Limit(int clients) {
    boolean roomFor(int alreadyOpen) {
      return clients == 0 || alreadyOpen < clients;
    }
  }

  @Override
  public String name() {
    return "limit";
  }

  @Override
  public String description() {
    return "limit the number of clients connected at once";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("limit", "N", "Most clients connected at once; later ones are refused (default 1; 0: no limit)."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("limit")) {
      return false;
    }
    limit = Values.parseInt("limit: " + key, value, 0, Integer.MAX_VALUE);
    return true;
  }

  @Override
  public void configComplete() {
    clientLimit = new Limit(limit);
  }

  @Override
  public void preconnect(Layer next, Client client, boolean readOnly) throws IOException {
    next.preconnect(client, readOnly);
    if (!clientLimit.roomFor(clients.open())) {
      throw tooMany();
    }
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export admitted = clients.admit(next.open(readOnly, exportName), clientLimit::roomFor);
    if (admitted == null) {
      throw tooMany();
    }
    return admitted;
  }

  private static NbdException tooMany() {
    return new NbdException(Errno.EPERM, "limit: too many clients connected, connection rejected");
  }
}
