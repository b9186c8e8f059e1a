package io.jnbd.filters.noparallel;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Filter;
import io.jnbd.api.Parameter;
import io.jnbd.api.ThreadModel;
import java.util.List;

/**
 * The noparallel filter (nbdkit's): serializes what the layers below would run in parallel, by
 * declaring a stricter thread model, which the server then keeps. For measuring what parallelism
 * buys, working around a layer that claims more than it handles, or clients that cannot take
 * replies out of order.
 */
public final class NoparallelFilter implements Filter {
  private ThreadModel model = ThreadModel.SERIALIZE_REQUESTS;
  private Settings settings = new Settings(model);

  /** @param model what serialize= asked for, which the server then keeps */
  record Settings(ThreadModel model) {}

  @Override
  public String name() {
    return "noparallel";
  }

  @Override
  public String description() {
    return "serialize requests, or connections";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("serialize", "requests|all-requests|connections",
        "requests (default): one request at a time per connection. all-requests: one at a time over all connections. "
            + "connections: one client at a time (others wait), and no multi-conn."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("serialize")) {
      return false;
    }
    model = switch (value) {
      case "requests" -> ThreadModel.SERIALIZE_REQUESTS;
      case "all-requests", "all_requests" -> ThreadModel.SERIALIZE_ALL_REQUESTS;
      case "connections" -> ThreadModel.SERIALIZE_CONNECTIONS;
      default -> throw new ConfigException(
          "noparallel: serialize must be requests, all-requests or connections: '" + value + "'");
    };
    return true;
  }

  @Override
  public void configComplete() {
    settings = new Settings(model);
  }

  @Override
  public ThreadModel threadModel() {
    return settings.model();
  }
}
