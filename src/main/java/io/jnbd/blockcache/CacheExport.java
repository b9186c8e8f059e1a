package io.jnbd.blockcache;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Support;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One connection's view through a {@link BlockCache}: data operations go to the shared cache
 * with this connection's export below; capabilities follow the cache mode.
 */
public final class CacheExport extends FilterExport {
  private static final Logger log = LoggerFactory.getLogger(CacheExport.class);
  private final BlockCache cache;
  private final boolean writethrough;

  public CacheExport(Export next, BlockCache cache) {
    super(next);
    this.cache = cache;
    this.writethrough = cache.settings().mode() == CacheMode.WRITETHROUGH;
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    cache.read(next, buffer, offset);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    cache.write(next, buffer, offset, flags);
  }

  @Override
  public void flush() throws IOException {
    cache.flush(next);
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    cache.trim(next, offset, length, flags);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    cache.zero(next, offset, length, flags);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    cache.fill(next, offset, length);
  }

  @Override
  public Support canCache() {
    return Support.NATIVE;
  }

  @Override
  public boolean canFlush() throws IOException {
    // Writeback needs flush to push dirty blocks even when the layer below has nothing to flush.
    return writethrough ? next.canFlush() : canWrite();
  }

  @Override
  public Support canFua() throws IOException {
    return writethrough ? next.canFua() : Support.NATIVE;
  }

  @Override
  public boolean canExtents() throws IOException {
    // Below does not know about dirty blocks yet, so its holes could hide our data.
    return writethrough && next.canExtents();
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    if (writethrough) {
      next.extents(offset, length, flags, extents);
    } else {
      extents.add(offset, length, Extents.DATA);
    }
  }

  @Override
  public void close() throws IOException {
    log.debug("cache: connection closed; {}", cache.stats());
    try {
      cache.writeBackOnClose(next);
    } catch (IOException e) {
      log.error("cache: dirty blocks could not be written back as the connection closed: {}", e.getMessage());
      throw e;
    } finally {
      next.close();
    }
  }
}
