package io.jnbd.filters.count;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.ReadData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The count filter: adds up the bytes that were read, written, zeroed and trimmed, over all
 * connections, and logs the four totals at debug level ({@code -v}) when the server unloads
 * its layers, as nbdkit's count filter does (virt-v2v reads the line to tell how much it
 * copied). Only requests that succeeded count. It takes no parameters. For requests, times and
 * errors per operation, use the stats filter.
 */
public final class CountFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(CountFilter.class);

  final LongAdder read = new LongAdder();
  final LongAdder written = new LongAdder();
  final LongAdder zeroed = new LongAdder();
  final LongAdder trimmed = new LongAdder();

  @Override
  public String name() {
    return "count";
  }

  @Override
  public String description() {
    return "count bytes read, written, zeroed and trimmed, logged with -v at exit";
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new FilterExport(next.open(readOnly, exportName)) {
      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        int length = buffer.remaining();
        super.pread(buffer, offset);
        read.add(length);
      }

      @Override
      public ReadData readData(long offset, int length) throws IOException {
        return readDataThen(offset, length, () -> read.add(length));
      }

      @Override
      public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
        int length = buffer.remaining();
        super.pwrite(buffer, offset, flags);
        written.add(length);
      }

      @Override
      public void zero(long offset, long length, int flags) throws IOException {
        super.zero(offset, length, flags);
        zeroed.add(length);
      }

      @Override
      public void trim(long offset, long length, int flags) throws IOException {
        super.trim(offset, length, flags);
        trimmed.add(length);
      }
    };
  }

  /** The line logged at unload; "count bytes:" starts it, as in nbdkit, for scripts that look for it. */
  String totals() {
    return "count bytes: read " + read.sum() + ", written " + written.sum() + ", zeroed " + zeroed.sum()
        + ", trimmed " + trimmed.sum();
  }

  @Override
  public void unload() {
    log.debug("{}", totals());
  }
}
