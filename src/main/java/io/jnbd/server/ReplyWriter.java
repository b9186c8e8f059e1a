package io.jnbd.server;

import io.jnbd.api.Errno;
import io.jnbd.api.Extents;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Replies;
import io.jnbd.protocol.Request;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Writes transmission-phase replies for one connection, in simple or structured form. Each
 * reply goes out under the connection's lock as one gathering write, so replies to concurrent
 * requests never interleave on the wire.
 */
final class ReplyWriter {
  /** The protocol asks servers to keep BLOCK_STATUS chunks to 2^20 extents. */
  private static final int MAX_EXTENTS = 1 << 20;
  /** Reads are scanned for zeroes in pieces this large; all-zero ones go out as holes. */
  private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(64 * 1024).asReadOnlyBuffer();

  private final Wire wire;
  private final boolean structured;
  private final ReentrantLock lock = new ReentrantLock();
  private final ByteBuffer header = ByteBuffer.allocateDirect(Nbd.CHUNK_HEADER_SIZE + 12);

  ReplyWriter(Wire wire, boolean structured) {
    this.wire = wire;
    this.structured = structured;
  }

  /** Success without data. */
  void ok(long cookie) throws IOException {
    lock.lock();
    try {
      header.clear();
      if (structured) {
        Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.NONE, cookie, 0);
      } else {
        Replies.simpleReply(header, 0, cookie);
      }
      wire.write(header.flip());
    } finally {
      lock.unlock();
    }
  }

  void error(long cookie, Errno errno, String message) throws IOException {
    lock.lock();
    try {
      if (structured) {
        wire.write(Replies.errorChunk(cookie, errno.wireValue(), message));
      } else {
        header.clear();
        Replies.simpleReply(header, errno.wireValue(), cookie);
        wire.write(header.flip());
      }
    } finally {
      lock.unlock();
    }
  }

  /** A successful READ: the data in {@code data} (position to limit) at the request's offset. */
  void readData(Request request, ByteBuffer data) throws IOException {
    if (structured && !data.hasRemaining()) {
      // A data chunk must carry at least one byte, so a zero-length read succeeds with no content.
      ok(request.cookie());
      return;
    }
    boolean hole = structured && isAllZero(data);
    lock.lock();
    try {
      header.clear();
      if (!structured) {
        Replies.simpleReply(header, 0, request.cookie());
        wire.write(header.flip(), data);
      } else if (hole) {
        Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.OFFSET_HOLE, request.cookie(), 12);
        header.putLong(request.offset()).putInt(data.remaining());
        wire.write(header.flip());
      } else {
        Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.OFFSET_DATA, request.cookie(), 8 + data.remaining());
        header.putLong(request.offset());
        wire.write(header.flip(), data);
      }
    } finally {
      lock.unlock();
    }
  }

  /** A BLOCK_STATUS reply for one metadata context. */
  void blockStatus(Request request, int contextId, Extents extents) throws IOException {
    int count = Math.min(extents.count(), MAX_EXTENTS);
    ByteBuffer payload = ByteBuffer.allocate(4 + 8 * count);
    payload.putInt(contextId);
    for (int i = 0; i < count; i++) {
      payload.putInt((int) extents.length(i)).putInt(extents.type(i));
    }
    lock.lock();
    try {
      header.clear();
      Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.BLOCK_STATUS, request.cookie(), payload.capacity());
      wire.write(header.flip(), payload.flip());
    } finally {
      lock.unlock();
    }
  }

  private static boolean isAllZero(ByteBuffer data) {
    int position = data.position();
    int limit = data.limit();
    for (int from = position; from < limit; from += ZEROES.capacity()) {
      int n = Math.min(ZEROES.capacity(), limit - from);
      if (data.slice(from, n).mismatch(ZEROES.slice(0, n)) >= 0) {
        return false;
      }
    }
    return limit > position;
  }
}
