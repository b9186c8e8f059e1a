package io.jnbd.testing;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Stack;
import java.util.List;

/** Layer stacks configured as the command line would, for tests that call them in-process. */
public final class Stacks {
  private Stacks() {}

  /** A stack of {@code filters} on {@code plugin}, given each {@code key=value} and completed. */
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
