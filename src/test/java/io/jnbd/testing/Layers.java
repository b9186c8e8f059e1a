package io.jnbd.testing;

import io.jnbd.api.Configurable;
import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;

/** Plugins and filters looked up by name, as the command line does, and configured from key=value strings. */
public final class Layers {
  private Layers() {}

  /** The plugin, configured; the stack completes the configuration ({@link TestServer} does). */
  public static Plugin plugin(String name, String... keyValues) {
    return configure(Catalog.plugin(name), keyValues);
  }

  /** The filter, configured; the stack completes the configuration ({@link TestServer} does). */
  public static Filter filter(String name, String... keyValues) {
    return configure(Catalog.filter(name), keyValues);
  }

  /** The layer given each key=value in turn, as the command line would; a key it does not take fails the test. */
  public static <T extends Configurable> T configure(T layer, String... keyValues) {
    for (String keyValue : keyValues) {
      int eq = keyValue.indexOf('=');
      if (!layer.config(keyValue.substring(0, eq), keyValue.substring(eq + 1))) {
        throw new IllegalArgumentException(layer.name() + " does not take " + keyValue);
      }
    }
    return layer;
  }
}
