package io.jnbd.testing;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Stack;
import java.util.List;

/** Builds a configured stack for tests that drive filters directly, without a socket. */
public final class Stacks {
  private Stacks() {}

  /** {@code filter} over {@code plugin}, given each {@code key=value} as the command line would. */
  public static Stack configured(Filter filter, Plugin plugin, String... keyValues) {
    Stack stack = new Stack(List.of(filter), plugin);
    for (String keyValue : keyValues) {
      int eq = keyValue.indexOf('=');
      stack.config(keyValue.substring(0, eq), keyValue.substring(eq + 1));
    }
    stack.configComplete();
    return stack;
  }
}
