package io.jnbd.plugins;

import io.jnbd.api.ConfigException;
import java.util.List;

/**
 * The data plugin's configuration, checked once all keys are in.
 *
 * @param contents the content of every data=, raw= and base64= given, in order; exactly one
 *     is allowed
 * @param size the virtual size: {@link #CONTENT_SIZE} (size= not given) becomes the content's length
 */
record DataSettings(List<DataFormat.Image> contents, long size) {
  /** size= not given: the disk is as large as its content. */
  static final long CONTENT_SIZE = -1;

  DataSettings {
    if (contents.isEmpty()) {
      throw new ConfigException("data: one of data, raw or base64 is required");
    }
    if (contents.size() > 1) {
      throw new ConfigException("data: give exactly one of data, raw or base64");
    }
    contents = List.copyOf(contents);
    if (size == CONTENT_SIZE) {
      size = contents.getFirst().length();
    }
  }

  /** The initial content. */
  DataFormat.Image content() {
    return contents.getFirst();
  }
}
