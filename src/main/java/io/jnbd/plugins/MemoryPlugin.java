package io.jnbd.plugins;

import io.jnbd.api.Export;
import java.util.List;

/**
 * A sparse RAM disk of any size up to 2^63-1 bytes: memory is used only for pages that hold
 * non-zero data. All connections share one store, so multi-conn is safe; the data is lost when
 * the server exits.
 */
public final class MemoryPlugin extends SizedPlugin {
  private final SparseStore store = new SparseStore();

  public MemoryPlugin() {
    super(REQUIRED, "Virtual size of the disk, e.g. 1G or 1T (required; sparse, up to 2^63-1 bytes).");
  }

  @Override
  public String name() {
    return "memory";
  }

  @Override
  public String description() {
    return "sparse RAM disk (contents are lost when the server exits)";
  }

  @Override
  public List<String> dumpLines() {
    return List.of("memory_page_size=" + store.pageSize());
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new StoreExport(store, size(), readOnly);
  }
}
