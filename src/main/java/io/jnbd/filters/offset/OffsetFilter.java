package io.jnbd.filters.offset;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.window.WindowExport;
import java.io.IOException;
import java.util.List;

/**
 * The offset filter: serves the bytes [offset, offset+range) of the layer below. A window that
 * does not fit the layer below fails the client's open (the size below is only known then).
 */
public final class OffsetFilter implements Filter {
  /** Where the window starts in the layer below. */
  private long offset;
  /** The window's length; null serves through to the end of the layer below. */
  private Long range;
  private Window window = new Window(0, null);

  /** The configured window; where it ends is known only at open, from the size below. */
  record Window(long offset, Long range) {
    WindowExport.Span over(long belowSize) {
      return new WindowExport.Span(offset, range != null ? range : Math.max(0, belowSize - offset));
    }
  }

  @Override
  public String name() {
    return "offset";
  }

  @Override
  public String description() {
    return "serve a byte range of the layer below";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("offset", "SIZE", "Where the served range starts in the layer below (default 0)."),
        new Parameter("range", "SIZE", "The length served (default: through to the end of the layer below)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "offset" -> offset = Values.parseSize("offset: " + key, value);
      case "range" -> range = Values.parseSize("offset: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    window = new Window(offset, range);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return WindowExport.open(next, readOnly, exportName, "offset", below -> window.over(below.size()));
  }
}
