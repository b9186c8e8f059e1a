package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Values;
import java.util.List;

/**
 * A plugin whose only parameter is {@code size}, which is also its magic key ({@code null 1G}).
 * Subclasses give the help text and default, and build their export from {@link #size()}; the
 * size is checked in {@link SizeSettings}.
 */
abstract class SizedPlugin implements Plugin {
  /** The default that makes {@code size} a required parameter. */
  static final long REQUIRED = -1;

  private final String sizeHelp;
  private long size;
  private SizeSettings settings;

  SizedPlugin(long defaultSize, String sizeHelp) {
    this.size = defaultSize;
    this.sizeHelp = sizeHelp;
  }

  /** The size, once configuration is complete. */
  final long size() {
    return settings.size();
  }

  @Override
  public final List<Parameter> parameters() {
    return List.of(new Parameter("size", "SIZE", sizeHelp));
  }

  @Override
  public final String magicConfigKey() {
    return "size";
  }

  @Override
  public final boolean config(String key, String value) {
    if (!key.equals("size")) {
      throw new ConfigException(name() + ": unknown parameter '" + key + "'");
    }
    size = Values.parseSize(name() + ": size", value);
    return true;
  }

  @Override
  public final void configComplete() {
    settings = new SizeSettings(name(), size);
  }
}
