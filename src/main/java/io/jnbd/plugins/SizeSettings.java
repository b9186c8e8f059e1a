package io.jnbd.plugins;

import io.jnbd.api.ConfigException;

/**
 * The configuration of a {@link SizedPlugin}, checked once all keys are in.
 *
 * @param plugin the plugin's name, for messages
 * @param size the virtual size in bytes; {@link SizedPlugin#REQUIRED} when size= was not given
 *     and has no default
 */
record SizeSettings(String plugin, long size) {
  SizeSettings {
    if (size < 0) {
      throw new ConfigException(plugin + ": the size parameter is required (e.g. size=1G)");
    }
  }
}
