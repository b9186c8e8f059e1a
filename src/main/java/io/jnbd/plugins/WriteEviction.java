package io.jnbd.plugins;

import io.jnbd.plugins.NativeFileOps.Advice;
import io.jnbd.plugins.NativeFileOps.NativeFile;
import java.util.ArrayDeque;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps written data from piling up in the page cache, as nbdkit's file plugin does with
 * cache=none: each write starts the writeback of its range at once, and the range of the write
 * {@value #WINDOWS} writes earlier is then waited for and dropped from the cache. A writer that
 * outruns the disk is thereby slowed to it, and the cache holds at most the last few writes.
 *
 * <p>One instance per open file, shared by every connection writing through it; the ranges and
 * the waits are serialized by one lock, so that writes are evicted in the order they were made.
 */
final class WriteEviction {
  private static final Logger LOG = LoggerFactory.getLogger(WriteEviction.class);
  /** How many recent writes may still be in flight to the disk. */
  static final int WINDOWS = 8;

  private record Range(long offset, long length) {}

  private final NativeFile file;
  private final ReentrantLock lock = new ReentrantLock();
  private final ArrayDeque<Range> recent = new ArrayDeque<>(WINDOWS + 1);

  WriteEviction(NativeFile file) {
    this.file = file;
  }

  /** Called after each write of {@code length} bytes at {@code offset}. */
  void written(long offset, long length) {
    lock.lock();
    try {
      NativeFileOps.Result started = file.startWriteback(offset, length);
      if (started.failed()) {
        LOG.debug("file: sync_file_range(WRITE) failed with errno {}", started.errno());
      }
      recent.addLast(new Range(offset, length));
      if (recent.size() > WINDOWS) {
        Range oldest = recent.removeFirst();
        NativeFileOps.Result done = file.writeBack(oldest.offset(), oldest.length());
        if (done.failed()) {
          LOG.debug("file: sync_file_range(WAIT) failed with errno {}", done.errno());
        }
        file.advise(oldest.offset(), oldest.length(), Advice.DONTNEED);
      }
    } finally {
      lock.unlock();
    }
  }
}
