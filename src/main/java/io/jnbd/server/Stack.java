package io.jnbd.server;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Plugin;
import io.jnbd.api.ThreadModel;
import java.io.IOException;
import java.util.List;

/**
 * The filters (outermost first) stacked on a plugin, seen from the server as one {@link Layer}.
 * It routes key=value configuration the way nbdkit does: each filter, outermost first, may claim
 * a key; what none claims goes to the plugin, which must know it.
 */
public final class Stack implements Layer {
  private final List<Filter> filters;
  private final Plugin plugin;
  private final Layer top;

  public Stack(List<Filter> filters, Plugin plugin) {
    this.filters = List.copyOf(filters);
    this.plugin = plugin;
    Layer below = plugin;
    for (int i = this.filters.size() - 1; i >= 0; i--) {
      below = new FilterLayer(this.filters.get(i), below);
    }
    this.top = below;
  }

  public Plugin plugin() {
    return plugin;
  }

  public List<Filter> filters() {
    return filters;
  }

  /** Gives one key=value to the first layer that claims it. */
  public void config(String key, String value) {
    for (Filter filter : filters) {
      if (filter.config(key, value)) {
        return;
      }
    }
    if (!plugin.config(key, value)) {
      throw new ConfigException(plugin.name() + ": unknown parameter '" + key + "'");
    }
  }

  /** Completes configuration from the plugin outwards, so filters can rely on what is below. */
  public void configComplete() {
    plugin.configComplete();
    for (int i = filters.size() - 1; i >= 0; i--) {
      filters.get(i).configComplete();
    }
  }

  /** The most restrictive thread model of all layers. */
  public ThreadModel threadModel() {
    ThreadModel model = plugin.threadModel();
    for (Filter filter : filters) {
      model = model.mostRestrictive(filter.threadModel());
    }
    return model;
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    return top.open(readOnly, exportName);
  }

  @Override
  public List<ExportDescription> listExports(boolean readOnly) throws IOException {
    return top.listExports(readOnly);
  }

  @Override
  public String defaultExport(boolean readOnly) throws IOException {
    return top.defaultExport(readOnly);
  }

  /** Unloads every layer, outermost first, as nbdkit does. */
  public void unload() {
    for (Filter filter : filters) {
      filter.unload();
    }
    plugin.unload();
  }

  private record FilterLayer(Filter filter, Layer next) implements Layer {
    @Override
    public Export open(boolean readOnly, String exportName) throws IOException {
      return filter.open(next, readOnly, exportName);
    }

    @Override
    public List<ExportDescription> listExports(boolean readOnly) throws IOException {
      return filter.listExports(next, readOnly);
    }

    @Override
    public String defaultExport(boolean readOnly) throws IOException {
      return filter.defaultExport(next, readOnly);
    }
  }
}
