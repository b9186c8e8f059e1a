package io.jnbd.util;

import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.Support;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Operations done with others where a layer emulates them: FUA as a flush after, zeroes written
 * as data, a cache request served by reading. The server does this for the top of the stack; a filter that
 * advertises an emulated operation does it for a filter above that calls it.
 */
public final class Emulation {
  /** How much one write of zeroes or one read for a cache request covers; an emulated CACHE holds a buffer this size. */
  public static final int CHUNK = 1 << 20;
  private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(CHUNK).asReadOnlyBuffer();

  private Emulation() {}

  /** A write, trim or zero, given its flags. */
  public interface FlaggedOperation {
    void run(int flags) throws IOException;
  }

  /**
   * Runs the operation with {@code flags} on {@code below}; where they ask for FUA and {@code
   * below} only emulates it, runs it without FUA and flushes after, as the server would. A layer
   * that emulates FUA may ignore the flag, so passing it on is not enough. A layer with neither
   * FUA nor flush has no way to make data durable, and gets the operation alone.
   */
  public static void withFua(Export below, int flags, FlaggedOperation operation) throws IOException {
    if (Flags.has(flags, Flags.FUA) && below.canFua() != Support.NATIVE) {
      operation.run(flags & ~Flags.FUA);
      if (below.canFlush()) {
        below.flush();
      }
    } else {
      operation.run(flags);
    }
  }

  /** Writes zeroes over the range, each write with {@code flags} (FUA or none). */
  public static void writeZeroes(Export export, long offset, long length, int flags) throws IOException {
    for (long done = 0; done < length; ) {
      int n = (int) Math.min(CHUNK, length - done);
      export.pwrite(ZEROES.duplicate().limit(n), offset + done, flags);
      done += n;
    }
  }

  /** Reads the range and drops the bytes, so that the layers below have it at hand. */
  public static void readAndDiscard(Export export, long offset, long length, DirectBufferPool pool) throws IOException {
    ByteBuffer scratch = pool.take(CHUNK);
    try {
      for (long done = 0; done < length; ) {
        int n = (int) Math.min(CHUNK, length - done);
        export.pread(scratch.clear().limit(n), offset + done);
        done += n;
      }
    } finally {
      pool.give(scratch);
    }
  }

  /** Zeroes the buffer from its position to its limit, which stay where they are. */
  public static ByteBuffer fillZeroes(ByteBuffer buffer) {
    for (int at = buffer.position(); at < buffer.limit(); at += CHUNK) {
      buffer.put(at, ZEROES, 0, Math.min(CHUNK, buffer.limit() - at));
    }
    return buffer;
  }
}
