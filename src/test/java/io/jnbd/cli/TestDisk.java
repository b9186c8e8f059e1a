package io.jnbd.cli;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Values;
import io.jnbd.testing.ArrayDisk;
import java.io.IOException;
import java.util.List;

/** A command-line test plugin: an {@link ArrayDisk} of size=SIZE (the magic key), required. */
public class TestDisk implements Plugin {
  private int size = -1;
  private ArrayDisk disk;

  /** The configured size, for tests that check key routing. */
  int size() {
    return size;
  }

  @Override
  public String name() {
    return "testdisk";
  }

  @Override
  public String description() {
    return "a RAM disk for command-line tests";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("size", "SIZE", "(required) Size of the disk, at most 64M."));
  }

  @Override
  public String magicConfigKey() {
    return "size";
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("size")) {
      throw new ConfigException("testdisk: unknown parameter '" + key + "'");
    }
    long parsed = Values.parseSize("testdisk: size", value);
    if (parsed > 64 << 20) {
      throw new ConfigException("testdisk: size: at most 64M: " + value);
    }
    size = (int) parsed;
    return true;
  }

  @Override
  public void configComplete() {
    if (size < 0) {
      throw new ConfigException("testdisk: the size parameter is required");
    }
    disk = new ArrayDisk(size);
  }

  @Override
  public List<String> dumpLines() {
    return List.of("testdisk_max_size=64M");
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    return disk.open(readOnly, exportName);
  }
}
