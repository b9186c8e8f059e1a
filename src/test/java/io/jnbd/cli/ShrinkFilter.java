package io.jnbd.cli;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import java.io.IOException;
import java.util.List;

/** A command-line test filter that hides the last shrink=SIZE bytes, to show its key reached it. */
public final class ShrinkFilter implements Filter {
  private long shrink;

  @Override
  public String name() {
    return "shrink";
  }

  @Override
  public String description() {
    return "hides the end of the export, for command-line tests";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("shrink", "SIZE", "Bytes to hide at the end (default 0)."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("shrink")) {
      return false;
    }
    shrink = Values.parseSize("shrink: shrink", value);
    return true;
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new FilterExport(next.open(readOnly, exportName)) {
      @Override
      public long size() throws IOException {
        return Math.max(0, next.size() - shrink);
      }
    };
  }
}
