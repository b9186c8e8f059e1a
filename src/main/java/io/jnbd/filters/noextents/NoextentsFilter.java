package io.jnbd.filters.noextents;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import java.io.IOException;

/**
 * The noextents filter: the export reads as fully allocated data; holes and zero ranges of the
 * layer below are not reported (block status still works, and says "data" everywhere).
 */
public final class NoextentsFilter implements Filter {
  @Override
  public String name() {
    return "noextents";
  }

  @Override
  public String description() {
    return "report the whole export as allocated data, hiding holes below";
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new FilterExport(next.open(readOnly, exportName), FilterExport.Reads.UNTOUCHED) {
      @Override
      public boolean canExtents() {
        return false;
      }

      @Override
      public void extents(long offset, long length, int flags, Extents extents) {
        extents.add(offset, length, Extents.DATA);
      }
    };
  }
}
