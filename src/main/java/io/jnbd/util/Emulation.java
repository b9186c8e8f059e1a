package io.jnbd.util;

import io.jnbd.api.Export;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Operations done with others where a layer emulates them: zeroes written as data, a cache
 * request served by reading. The server does this for the top of the stack; a filter that
 * advertises an emulated operation does it for a filter above that calls it.
 */
public final class Emulation {
  /** How much one write of zeroes or one read for a cache request covers. */
  private static final int CHUNK = 1 << 20;
  private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(CHUNK).asReadOnlyBuffer();

  private Emulation() {}

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
