package io.jnbd.server;

import io.jnbd.api.Client;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Configurable;
import io.jnbd.api.Export;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Plugin;
import io.jnbd.api.ServerHandle;
import io.jnbd.api.ThreadModel;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The filters (outermost first) stacked on a plugin, seen from the server as one {@link Layer}.
 * It routes key=value configuration the way nbdkit does: each filter, outermost first, may claim
 * a key; what none claims goes to the plugin, which must know it.
 *
 * <p>The stack owns the links between layers: a filter's {@code next} opens exports that reach
 * the layer below only through a {@link Link}, and so does the server at the top. A filter
 * therefore never holds a raw export of another layer, and the thread model, range, flag and
 * short-read checks of {@link Link} hold for every call, from whichever thread.
 */
public final class Stack implements Layer {
  private final List<Filter> filters;
  private final Plugin plugin;
  private final Layer top;
  private final DebugFlags debug;

  public Stack(List<Filter> filters, Plugin plugin) {
    this(filters, plugin, DebugFlags.defaults());
  }

  public Stack(List<Filter> filters, Plugin plugin, DebugFlags debug) {
    this.filters = List.copyOf(filters);
    this.plugin = plugin;
    this.debug = debug;
    Layer below = plugin;
    String belowName = plugin.name();
    Configurable belowLayer = plugin;
    for (int i = this.filters.size() - 1; i >= 0; i--) {
      Filter filter = this.filters.get(i);
      below = new FilterLayer(filter, new LinkedLayer(filter.name(), belowName, belowLayer, below, debug));
      belowName = filter.name();
      belowLayer = filter;
    }
    this.top = new LinkedLayer("server", belowName, belowLayer, below, debug);
  }

  public DebugFlags debugFlags() {
    return debug;
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

  /**
   * Completes configuration from the plugin outwards, so filters can rely on what is below, and
   * then tells each filter the thread model of the layers below it.
   */
  public void configComplete() {
    plugin.configComplete();
    for (int i = filters.size() - 1; i >= 0; i--) {
      filters.get(i).configComplete();
    }
    ThreadModel below = plugin.threadModel();
    for (int i = filters.size() - 1; i >= 0; i--) {
      filters.get(i).threadModelBelow(below);
      below = below.mostRestrictive(filters.get(i).threadModel());
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

  /** Gives every layer the server that runs it. */
  public void attach(ServerHandle server) {
    for (Filter filter : filters) {
      filter.attach(server);
    }
    plugin.attach(server);
  }

  @Override
  public void preconnect(Client client, boolean readOnly) throws IOException {
    top.preconnect(client, readOnly);
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
    public void preconnect(Client client, boolean readOnly) throws IOException {
      filter.preconnect(next, client, readOnly);
    }

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

  /** A layer as the one above sees it: every export it opens comes wrapped in a {@link Link}. */
  private static final class LinkedLayer implements Layer {
    private final String caller;
    private final String callee;
    private final Configurable calleeLayer;
    private final Layer layer;
    private final DebugFlags debug;
    /** Shared by every link into this layer when it serializes all requests. */
    private final Lock allRequests = new ReentrantLock();

    LinkedLayer(String caller, String callee, Configurable calleeLayer, Layer layer, DebugFlags debug) {
      this.caller = caller;
      this.callee = callee;
      this.calleeLayer = calleeLayer;
      this.layer = layer;
      this.debug = debug;
    }

    @Override
    public void preconnect(Client client, boolean readOnly) throws IOException {
      layer.preconnect(client, readOnly);
    }

    @Override
    public Export open(boolean readOnly, String exportName) throws IOException {
      Export export = layer.open(readOnly, exportName);
      return new Link(caller, callee, calleeLayer.threadModel(), allRequests, export, debug);
    }

    @Override
    public List<ExportDescription> listExports(boolean readOnly) throws IOException {
      return layer.listExports(readOnly);
    }

    @Override
    public String defaultExport(boolean readOnly) throws IOException {
      return layer.defaultExport(readOnly);
    }
  }
}
