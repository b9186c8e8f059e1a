package io.jnbd.testing;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Stack;
import java.util.List;

/** Filters on a plugin, configured from key=value strings as the command line would. */
public final class Stacks {
  private Stacks() {}

  /** {@code filter} on {@code plugin}, each {@code key=value} given to the layer that claims it. */
  public static Stack configured(Filter filter, Plugin plugin, String... keyValues) {
    return configured(List.of(filter), plugin, keyValues);
  }

  /** {@code filters} (outermost first) on {@code plugin}, configured the same way. */
  public static Stack configured(List<Filter> filters, Plugin plugin, String... keyValues) {
    Stack stack = new Stack(filters, plugin);
    for (String keyValue : keyValues) {
      int eq = keyValue.indexOf('=');
      stack.config(keyValue.substring(0, eq), keyValue.substring(eq + 1));
    }
    stack.configComplete();
    return stack;
  }
}
