package io.jnbd.server;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import io.jnbd.api.ThreadModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's link from one layer to the layer below it, for one connection: what a filter's
 * export holds as {@code next}, and what the server calls at the top of the stack. It is the
 * only way down, so the server keeps each layer's promises whoever calls, a client's request or
 * a thread that a filter started itself:
 *
 * <ul>
 *   <li>the thread model that the layer below declared: one call at a time through this link
 *       (serialize-requests, serialize-connections) or through every link into that layer
 *       (serialize-all-requests);
 *   <li>ranges inside the export, flags that the operation takes, and reads that fill their
 *       buffer; a failure names the layer that asked wrongly or answered short, and reaches the
 *       client as an error instead of wrong data. With {@link DebugFlags#checks()} also flags and
 *       operations against the capabilities the layer below advertised;
 *   <li>with {@link DebugFlags#layers()}, a debug line per call with its time.
 * </ul>
 */
final class Link implements Export {
  private static final Logger log = LoggerFactory.getLogger(Link.class);
  private static final int WRITE_FLAGS = Flags.FUA;
  private static final int ZERO_FLAGS = Flags.FUA | Flags.MAY_TRIM | Flags.FAST_ZERO;
  private static final int EXTENTS_FLAGS = Flags.REQ_ONE;

  private final String caller;
  private final String callee;
  private final Export below;
  private final Lock lock;
  private final DebugFlags debug;
  private volatile long size = -1;

  /**
   * @param caller the layer that calls through this link, for messages ("server" at the top)
   * @param callee the layer below
   * @param layerLock the lock shared by every link into the layer below, used if it serializes all requests
   */
  Link(String caller, String callee, ThreadModel model, Lock layerLock, Export below, DebugFlags debug) {
    this.caller = caller;
    this.callee = callee;
    this.below = below;
    this.debug = debug;
    this.lock = switch (model) {
      case PARALLEL -> null;
      case SERIALIZE_ALL_REQUESTS -> layerLock;
      case SERIALIZE_REQUESTS, SERIALIZE_CONNECTIONS -> new ReentrantLock();
    };
  }

  @Override
  public long size() throws IOException {
    long known = size;
    if (known < 0) {
      long start = enter();
      try {
        known = below.size();
      } finally {
        leave(start, "size", 0, 0);
      }
      if (known < 0) {
        throw new NbdException(Errno.EIO, callee + ": reported a negative size, " + known);
      }
      size = known;
    }
    return known;
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    checkRange("pread", offset, length);
    long start = enter();
    try {
      below.pread(buffer, offset);
    } finally {
      leave(start, "pread", offset, length);
    }
    if (buffer.hasRemaining()) {
      throw new NbdException(Errno.EIO, callee + ": pread of " + length + " bytes at " + offset
          + " left " + buffer.remaining() + " bytes unfilled");
    }
  }

  @Override
  public ReadData readData(long offset, int length) throws IOException {
    checkRange("readData", offset, length);
    long start = enter();
    ReadData data;
    try {
      data = below.readData(offset, length);
    } finally {
      leave(start, "readData", offset, length);
    }
    long given = data == null ? length : bytesOf(data);
    if (given != length) {
      data.close();
      throw new NbdException(Errno.EIO, callee + ": readData of " + length + " bytes at " + offset
          + " gave " + given + " bytes");
    }
    return data;
  }

  private static long bytesOf(ReadData data) {
    if (data instanceof ReadData.Views views) {
      long sum = 0;
      for (ByteBuffer buffer : views.buffers()) {
        sum += buffer.remaining();
      }
      return views.length() == sum ? sum : -1;
    }
    return data.length();
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    int length = buffer.remaining();
    checkRange("pwrite", offset, length);
    checkFlags("pwrite", flags, WRITE_FLAGS);
    if (debug.checks()) {
      require("pwrite", canWrite(), "a layer that is not writable");
      checkFua("pwrite", flags);
    }
    long start = enter();
    try {
      below.pwrite(buffer, offset, flags);
    } finally {
      leave(start, "pwrite", offset, length);
    }
  }

  @Override
  public void flush() throws IOException {
    if (debug.checks()) {
      require("flush", canFlush(), "a layer that cannot flush");
    }
    long start = enter();
    try {
      below.flush();
    } finally {
      leave(start, "flush", 0, 0);
    }
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    checkRange("trim", offset, length);
    checkFlags("trim", flags, WRITE_FLAGS);
    if (debug.checks()) {
      require("trim", canTrim(), "a layer that cannot trim");
      checkFua("trim", flags);
    }
    long start = enter();
    try {
      below.trim(offset, length, flags);
    } finally {
      leave(start, "trim", offset, length);
    }
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    checkRange("zero", offset, length);
    checkFlags("zero", flags, ZERO_FLAGS);
    if (debug.checks()) {
      require("zero", canWrite(), "a layer that is not writable");
      require("zero", !Flags.has(flags, Flags.FAST_ZERO) || canFastZero(), "FAST_ZERO to a layer without fast zero");
      checkFua("zero", flags);
    }
    long start = enter();
    try {
      below.zero(offset, length, flags);
    } finally {
      leave(start, "zero", offset, length);
    }
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    checkRange("extents", offset, length);
    checkFlags("extents", flags, EXTENTS_FLAGS);
    long start = enter();
    try {
      below.extents(offset, length, flags, extents);
    } finally {
      leave(start, "extents", offset, length);
    }
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    checkRange("cache", offset, length);
    long start = enter();
    try {
      below.cache(offset, length);
    } finally {
      leave(start, "cache", offset, length);
    }
  }

  @Override
  public boolean canWrite() throws IOException {
    return ask("can_write", below::canWrite);
  }

  @Override
  public boolean canFlush() throws IOException {
    return ask("can_flush", below::canFlush);
  }

  @Override
  public Support canFua() throws IOException {
    return ask("can_fua", below::canFua);
  }

  @Override
  public boolean canTrim() throws IOException {
    return ask("can_trim", below::canTrim);
  }

  @Override
  public Support canZero() throws IOException {
    return ask("can_zero", below::canZero);
  }

  @Override
  public boolean canFastZero() throws IOException {
    return ask("can_fast_zero", below::canFastZero);
  }

  @Override
  public boolean canExtents() throws IOException {
    return ask("can_extents", below::canExtents);
  }

  @Override
  public Support canCache() throws IOException {
    return ask("can_cache", below::canCache);
  }

  @Override
  public boolean canMultiConn() throws IOException {
    return ask("can_multi_conn", below::canMultiConn);
  }

  @Override
  public boolean isRotational() throws IOException {
    return ask("is_rotational", below::isRotational);
  }

  @Override
  public BlockSize blockSize() throws IOException {
    return ask("block_size", below::blockSize);
  }

  @Override
  public void close() throws IOException {
    long start = enter();
    try {
      below.close();
    } finally {
      leave(start, "close", 0, 0);
    }
  }

  private interface Question<T> {
    T ask() throws IOException;
  }

  private <T> T ask(String operation, Question<T> question) throws IOException {
    long start = enter();
    try {
      return question.ask();
    } finally {
      leave(start, operation, 0, 0);
    }
  }

  private long enter() {
    if (lock != null) {
      lock.lock();
    }
    return debug.layers() ? System.nanoTime() : 0;
  }

  private void leave(long start, String operation, long offset, long length) {
    if (lock != null) {
      lock.unlock();
    }
    if (debug.layers()) {
      log.debug("{} -> {}: {} {}@{} in {} us", caller, callee, operation, length, offset, (System.nanoTime() - start) / 1000);
    }
  }

  private void checkRange(String operation, long offset, long length) throws IOException {
    long limit = size();
    if (offset < 0 || length < 0 || offset > limit - length) {
      throw new NbdException(Errno.EINVAL, caller + ": " + operation + " of " + length + " bytes at " + offset
          + " is outside " + callee + "'s " + limit + " bytes");
    }
  }

  private void checkFlags(String operation, int flags, int allowed) throws NbdException {
    if ((flags & ~allowed) != 0) {
      throw new NbdException(Errno.EINVAL, caller + ": " + operation + " to " + callee
          + " with flags 0x" + Integer.toHexString(flags) + " it does not take");
    }
  }

  private void checkFua(String operation, int flags) throws IOException {
    require(operation, !Flags.has(flags, Flags.FUA) || canFua() != Support.NONE, "FUA to a layer without FUA");
  }

  private void require(String operation, boolean condition, String what) throws NbdException {
    if (!condition) {
      throw new NbdException(Errno.EINVAL, caller + ": " + operation + " sent to " + callee + ", " + what);
    }
  }
}
