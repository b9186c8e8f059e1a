package io.jnbd.examples;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Values;
import java.nio.ByteBuffer;
import java.util.List;

/** The README's example plugin: a read-only export in which every byte has one value. */
public final class FillPlugin implements Plugin {
  private long size = 1 << 20;
  private byte fill;

  @Override public String name() { return "fill"; }
  @Override public String description() { return "every byte has the same value"; }
  @Override public String magicConfigKey() { return "size"; }

  @Override public List<Parameter> parameters() {
    return List.of(new Parameter("size", "SIZE", "export size (default 1M)"),
        new Parameter("byte", "0..255", "the value of every byte (default 0)"));
  }

  @Override public boolean config(String key, String value) {
    switch (key) {
      case "size" -> size = Values.parseSize(key, value);
      case "byte" -> fill = (byte) Values.parseInt(key, value, 0, 255);
      default -> throw new ConfigException("fill: unknown parameter '" + key + "'");
    }
    return true;
  }

  @Override public Export open(boolean readOnly, String exportName) {
    return new Export() {
      @Override public long size() { return size; }

      @Override public void pread(ByteBuffer buffer, long offset) {
        while (buffer.hasRemaining()) {
          buffer.put(fill);
        }
      }
    };
  }
}
