package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Values;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * A writable sparse RAM disk whose initial content comes from the command line: written in
 * {@link DataFormat} ({@code data=}), literally ({@code raw=}) or in base64 ({@code base64=}).
 * Writes are shared by all connections and lost when the server exits.
 */
public final class DataPlugin implements Plugin {
  private final List<DataFormat.Image> contents = new ArrayList<>();
  private long size = DataSettings.CONTENT_SIZE;
  private DataSettings settings;

  @Override
  public String name() {
    return "data";
  }

  @Override
  public String description() {
    return "RAM disk whose initial content is given on the command line";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("data", "DATA",
            "Content in the data format: bytes, \"strings\", le32:/be64: words, @offsets, ( groups ) and *N "
                + "repetition (see docs/plugins/data.md). Exactly one of data, raw, base64 is required."),
        new Parameter("raw", "BYTES", "Content given literally (as UTF-8 bytes)."),
        new Parameter("base64", "BASE64", "Content given in base64."),
        new Parameter("size", "SIZE",
            "Truncate or extend (with zeroes) to this size (default: the size of the content)."));
  }

  @Override
  public String magicConfigKey() {
    return "data";
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "data" -> contents.add(DataFormat.parse(value, SparseStore.DEFAULT_PAGE_SIZE));
      case "raw" -> contents.add(literal(value.getBytes(StandardCharsets.UTF_8)));
      case "base64" -> {
        try {
          contents.add(literal(Base64.getDecoder().decode(value.replaceAll("\\s", ""))));
        } catch (IllegalArgumentException e) {
          throw new ConfigException("data: base64: not valid base64: " + e.getMessage());
        }
      }
      case "size" -> size = Values.parseSize("data: size", value);
      default -> throw new ConfigException("data: unknown parameter '" + key + "'");
    }
    return true;
  }

  private static DataFormat.Image literal(byte[] bytes) {
    SparseStore store = new SparseStore();
    try {
      store.write(ByteBuffer.wrap(bytes), 0);
    } catch (NbdException e) {
      throw new ConfigException("data: " + e.getMessage(), e);
    }
    return new DataFormat.Image(store, bytes.length);
  }

  @Override
  public void configComplete() {
    settings = new DataSettings(contents, size);
    DataFormat.Image image = settings.content();
    if (settings.size() < image.length()) {
      // Bytes past the end can never be read; give their memory back.
      image.store().zero(settings.size(), image.length() - settings.size());
    }
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new StoreExport(settings.content().store(), settings.size(), readOnly);
  }
}
