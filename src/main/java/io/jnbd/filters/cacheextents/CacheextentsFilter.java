package io.jnbd.filters.cacheextents;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.Layer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The cacheextents filter: keeps the last block-status answer of the layer below, per
 * connection, and answers a request from it when the request starts inside it. Misses ask below
 * for the whole request even when the client wants one extent (REQ_ONE), which is what makes a
 * client that walks a disk one extent at a time (qemu-img convert) cheap over a plugin whose
 * every call costs a round trip.
 *
 * <p>A write, trim or zero through this filter, on any connection, makes every connection's
 * cached answer stale: they are checked against one counter of changes.
 */
public final class CacheextentsFilter implements Filter {
  /** Bumped after each change completes; an answer is good while the count it was read at holds. */
  private final AtomicLong changes = new AtomicLong();

  @Override
  public String name() {
    return "cacheextents";
  }

  @Override
  public String description() {
    return "cache the last extents (block status) answer of the layer below";
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new CachingExport(next.open(readOnly, exportName));
  }

  /** One answer from below: the extents of [start, end), read when {@link #changes} was {@code version}. */
  private record Answer(long version, long start, long end, long[] lengths, int[] types) {
    static Answer of(long version, Extents extents) {
      long[] lengths = new long[extents.count()];
      int[] types = new int[extents.count()];
      for (int i = 0; i < lengths.length; i++) {
        lengths[i] = extents.length(i);
        types[i] = extents.type(i);
      }
      return new Answer(version, extents.start(), extents.next(), lengths, types);
    }

    boolean answers(long offset, long version) {
      return this.version == version && offset >= start && offset < end;
    }

    /** Adds everything known from {@code offset} on; the collector clips what lies outside it. */
    void addTo(Extents out) {
      long at = start;
      for (int i = 0; i < lengths.length && !out.isFull(); i++) {
        out.add(at, lengths[i], types[i]);
        at += lengths[i];
      }
    }
  }

  private final class CachingExport extends FilterExport {
    private volatile Answer last;

    CachingExport(Export next) {
      super(next, Reads.UNTOUCHED);
    }

    @Override
    public void extents(long offset, long length, int flags, Extents extents) throws IOException {
      long version = changes.get();
      Answer cached = last;
      if (cached == null || !cached.answers(offset, version)) {
        Extents fresh = new Extents(offset, offset + length);
        next.extents(offset, length, flags & ~Flags.REQ_ONE, fresh);
        if (fresh.count() == 0) {
          return;
        }
        cached = Answer.of(version, fresh);
        last = cached;
      }
      cached.addTo(extents);
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      try {
        next.pwrite(buffer, offset, flags);
      } finally {
        changes.incrementAndGet();
      }
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      try {
        next.trim(offset, length, flags);
      } finally {
        changes.incrementAndGet();
      }
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      try {
        next.zero(offset, length, flags);
      } finally {
        changes.incrementAndGet();
      }
    }
  }
}
