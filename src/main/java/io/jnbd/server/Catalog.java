package io.jnbd.server;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Configurable;
import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;

/**
 * Finds plugins and filters: by name among those registered with {@link ServiceLoader}, or by
 * fully qualified class name. Each lookup returns a new, unconfigured instance.
 */
public final class Catalog {
  private Catalog() {}

  public static Plugin plugin(String name) {
    return find(Plugin.class, "plugin", name);
  }

  public static Filter filter(String name) {
    return find(Filter.class, "filter", name);
  }

  /** Every registered plugin, sorted by name. */
  public static List<Plugin> plugins() {
    return all(Plugin.class);
  }

  /** Every registered filter, sorted by name. */
  public static List<Filter> filters() {
    return all(Filter.class);
  }

  private static <T extends Configurable> List<T> all(Class<T> type) {
    List<T> found = new ArrayList<>();
    ServiceLoader.load(type).forEach(found::add);
    found.sort(Comparator.comparing(Configurable::name));
    return found;
  }

  private static <T extends Configurable> T find(Class<T> type, String kind, String name) {
    for (ServiceLoader.Provider<T> provider : ServiceLoader.load(type).stream().toList()) {
      T candidate = provider.get();
      if (candidate.name().equals(name)) {
        return candidate;
      }
    }
    if (name.contains(".")) {
      try {
        Class<?> loaded = Class.forName(name);
        return type.cast(loaded.getConstructor().newInstance());
      } catch (ReflectiveOperationException | ClassCastException | LinkageError e) {
        throw new ConfigException("cannot load " + kind + " class '" + name + "': " + e);
      }
    }
    List<String> names = all(type).stream().map(Configurable::name).toList();
    throw new ConfigException("unknown " + kind + " '" + name + "' (known: " + String.join(", ", names) + ")");
  }
}
