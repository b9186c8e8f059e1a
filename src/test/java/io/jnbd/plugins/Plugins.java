package io.jnbd.plugins;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Plugin;
import io.jnbd.testing.Layers;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Test helpers: configure a plugin from key=value strings, and write and map through an export. */
final class Plugins {
  private Plugins() {}

  /** Looks the plugin up by name as the command line does, then configures and completes it. */
  static Plugin configured(String name, String... keyValues) {
    Plugin plugin = Layers.plugin(name, keyValues);
    plugin.configComplete();
    return plugin;
  }

  static void write(Export export, long offset, byte[] bytes) throws IOException {
    export.pwrite(ByteBuffer.wrap(bytes), offset, 0);
  }

  /** The extents as "type:length" strings, e.g. [3:65536, 0:65536]. */
  static String map(Export export, long offset, long length) throws IOException {
    Extents extents = new Extents(offset, offset + length);
    export.extents(offset, length, 0, extents);
    StringBuilder out = new StringBuilder("[");
    for (int i = 0; i < extents.count(); i++) {
      out.append(i == 0 ? "" : ", ").append(extents.type(i)).append(':').append(extents.length(i));
    }
    return out.append(']').toString();
  }
}
