package io.jnbd.filters.multiconn;

import io.jnbd.api.Export;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import io.jnbd.filters.multiconn.MultiConnFilter.Mode;
import io.jnbd.filters.multiconn.MultiConnFilter.TrackDirty;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One connection through the multi-conn filter: what it advertises in its resolved mode, what it
 * has done since its last flush, and its flushes, replayed on the group in emulate mode.
 */
final class MultiConnExport extends FilterExport {
  private final MultiConnFilter filter;
  private final Mode mode;
  private final TrackDirty track;
  private final boolean canFlush;
  final FlushGroup group;
  // Set without the lock, as nbdkit does: a client must have its replies before it relies on a
  // flush, so a write still racing a flush is one the flush need not cover.
  private volatile boolean wrote;
  private volatile boolean read;

  MultiConnExport(Export next, MultiConnFilter filter, Mode mode, TrackDirty track, FlushGroup group) throws IOException {
    super(next);
    this.filter = filter;
    this.mode = mode;
    this.track = track;
    this.canFlush = next.canFlush();
    this.group = group;
  }

  @Override
  public boolean canMultiConn() throws IOException {
    return switch (mode) {
      case EMULATE, UNSAFE -> true;
      case PLUGIN -> next.canMultiConn();
      case DISABLE, AUTO -> false;
    };
  }

  /** In emulate mode FUA must be a flush, and so reach every connection: it is emulated. */
  @Override
  public Support canFua() throws IOException {
    Support below = next.canFua();
    return mode == Mode.EMULATE && below == Support.NATIVE ? Support.EMULATE : below;
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    next.pread(buffer, offset);
    markRead();
  }

  @Override
  public ReadData readData(long offset, int length) throws IOException {
    return readDataThen(offset, length, this::markRead);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    next.cache(offset, length);
    markRead();
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    int passed = beforeWrite(flags);
    next.pwrite(buffer, offset, passed);
    afterWrite(flags, passed);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    int passed = beforeWrite(flags);
    next.zero(offset, length, passed);
    afterWrite(flags, passed);
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    int passed = beforeWrite(flags);
    next.trim(offset, length, passed);
    afterWrite(flags, passed);
  }

  /** Marks the write and returns the flags to pass below: in emulate mode FUA becomes a flush after. */
  private int beforeWrite(int flags) {
    int passed = mode == Mode.EMULATE ? flags & ~Flags.FUA : flags;
    if (!Flags.has(passed, Flags.FUA)) {
      // A write with FUA below is durable when it returns; any other leaves this connection dirty.
      markWritten();
    }
    return passed;
  }

  private void afterWrite(int flags, int passed) throws IOException {
    if (Flags.has(flags, Flags.FUA) && !Flags.has(passed, Flags.FUA)) {
      flush();
    }
  }

  private void markWritten() {
    if (track == TrackDirty.CONNECTION) {
      wrote = true;
    }
    if (track != TrackDirty.OFF) {
      group.dirty = true;
    }
  }

  private void markRead() {
    if (track == TrackDirty.CONNECTION) {
      read = true;
    }
  }

  @Override
  public void flush() throws IOException {
    switch (mode) {
      case EMULATE -> flushGroup();
      case PLUGIN -> flushIfDirty();
      default -> next.flush();
    }
  }

  private void flushGroup() throws IOException {
    filter.lock.lock();
    try {
      boolean groupDirty = group.dirty;
      for (MultiConnExport member : group.members) {
        if (member.canFlush && member.needsFlush(groupDirty)) {
          member.next.flush();
          member.clean();
        }
      }
      group.dirty = false;
    } finally {
      filter.lock.unlock();
    }
  }

  private void flushIfDirty() throws IOException {
    filter.lock.lock();
    try {
      if (needsFlush(group.dirty)) {
        next.flush();
        clean();
        if (track == TrackDirty.FAST) {
          group.dirty = false;
        }
      }
    } finally {
      filter.lock.unlock();
    }
  }

  /**
   * Whether a flush of this connection can matter: it wrote since its last flush, or it read (and
   * may hold what it read) while something was written somewhere.
   */
  private boolean needsFlush(boolean groupDirty) {
    return switch (track) {
      case OFF -> true;
      case FAST -> groupDirty;
      case CONNECTION -> wrote || (groupDirty && read);
    };
  }

  private void clean() {
    wrote = false;
    read = false;
  }

  @Override
  public void close() throws IOException {
    filter.leave(this);
    next.close();
  }
}
