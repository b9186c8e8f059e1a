package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Values;
import java.util.List;

/**
 * A sparse RAM disk of any size up to 2^63-1 bytes: memory is used only for pages that hold
 * non-zero data. All connections share one store, so multi-conn is safe; the data is lost when
 * the server exits.
 */
public final class MemoryPlugin implements Plugin {
  private final SparseStore store = new SparseStore();
  private long size = -1;

  @Override
  public String name() {
    return "memory";
  }

  @Override
  public String description() {
    return "sparse RAM disk (contents are lost when the server exits)";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("size", "SIZE",
        "Virtual size of the disk, e.g. 1G or 1T (required; sparse, up to 2^63-1 bytes)."));
  }

  @Override
  public String magicConfigKey() {
    return "size";
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("size")) {
      throw new ConfigException("memory: unknown parameter '" + key + "'");
    }
    size = Values.parseSize("memory: size", value);
    return true;
  }

  @Override
  public void configComplete() {
    if (size < 0) {
      throw new ConfigException("memory: the size parameter is required (e.g. size=1G)");
    }
  }

  @Override
  public List<String> dumpLines() {
    return List.of("memory_page_size=" + store.pageSize());
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new StoreExport(store, size, readOnly);
  }
}
