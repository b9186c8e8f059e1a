package io.jnbd.api;

import java.io.IOException;
import java.util.List;

/**
 * A backend: the data an export serves. One instance per server; {@link #open} is called for
 * every client connection and returns that connection's {@link Export}. State that all
 * connections share (the data itself, pools) lives in the plugin instance.
 *
 * <p>Plugins are found by {@link #name()} through {@link java.util.ServiceLoader} (list the
 * class in {@code META-INF/services/io.jnbd.api.Plugin}) or by fully qualified class name with a
 * public no-argument constructor.
 */
public interface Plugin extends Configurable, Layer {
  /**
   * The key that a bare value on the command line stands for, as in nbdkit: {@code memory 1G}
   * means {@code memory size=1G}. Null when the plugin has none.
   */
  default String magicConfigKey() {
    return null;
  }

  @Override
  default List<ExportDescription> listExports(boolean readOnly) throws IOException {
    return List.of(new ExportDescription(defaultExport(readOnly), ""));
  }

  @Override
  default String defaultExport(boolean readOnly) throws IOException {
    return "";
  }
}
