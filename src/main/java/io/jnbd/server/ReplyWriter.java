package io.jnbd.server;

import io.jnbd.api.Errno;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Chunk;
import io.jnbd.protocol.Replies;
import io.jnbd.protocol.Request;
import io.jnbd.util.DirectBufferPool;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes transmission-phase replies for one connection, in simple or structured form. Each
 * reply goes out under the connection's lock, as one gathering write where it can, so replies
 * to concurrent requests never interleave on the wire.
 *
 * <p>READ data a layer handed over without a copy ({@link ReadData}) goes out as it is: views
 * in the same gathering write, zeroes as a hole, a file region by sendfile(2) after its header
 * when the connection allows it (a plain socket), else read into a pool buffer first.
 */
final class ReplyWriter {
  private static final Logger log = LoggerFactory.getLogger(ReplyWriter.class);
  /** The protocol asks servers to keep BLOCK_STATUS chunks to 2^20 extents. */
  private static final int MAX_EXTENTS = 1 << 20;
  /** Reads are scanned for zeroes in pieces this large; all-zero ones go out as holes. */
  private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(64 * 1024).asReadOnlyBuffer();

  private final Wire wire;
  private final boolean structured;
  /** For file regions that cannot go, or go only in part, by sendfile. */
  private final DirectBufferPool pool;
  private final ReentrantLock lock = new ReentrantLock();
  private final ByteBuffer header = ByteBuffer.allocateDirect(Nbd.CHUNK_HEADER_SIZE + 12);
  /** File regions sent, and how many of them sendfile left a part of to be copied; written under the lock. */
  private volatile long regionsSent;
  private volatile long regionsFinishedByCopy;

  ReplyWriter(Wire wire, boolean structured, DirectBufferPool pool) {
    this.wire = wire;
    this.structured = structured;
    this.pool = pool;
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
    readBuffers(request, data.remaining(), data);
  }

  /** A successful READ answered with bytes that a layer handed over; the caller closes them. */
  void readData(Request request, ReadData data) throws IOException {
    switch (data) {
      case ReadData.Views views -> readBuffers(request, views.length(), views.buffers());
      case ReadData.Zeroes zeroes -> readZeroes(request, zeroes.length());
      case ReadData.FileRegion region -> readFileRegion(request, region);
    }
  }

  /** "sendfile: N replies, M finished by copying", or null when none went by sendfile. */
  String sendFileSummary() {
    long sent = regionsSent;
    return sent == 0 ? null : "sendfile: " + sent + " replies, " + regionsFinishedByCopy + " finished by copying";
  }

  /** How many file regions sendfile left a part of, which was then copied. */
  long regionsFinishedByCopy() {
    return regionsFinishedByCopy;
  }

  private void readBuffers(Request request, int length, ByteBuffer... data) throws IOException {
    if (structured && length == 0) {
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
        wire.write(headerAnd(data));
      } else if (hole) {
        writeHole(request, length);
      } else {
        Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.OFFSET_DATA, request.cookie(), 8 + length);
        header.putLong(request.offset());
        wire.write(headerAnd(data));
      }
    } finally {
      lock.unlock();
    }
  }

  /** The header, flipped, followed by {@code data}: one gathering write. */
  private ByteBuffer[] headerAnd(ByteBuffer[] data) {
    ByteBuffer[] all = new ByteBuffer[data.length + 1];
    all[0] = header.flip();
    System.arraycopy(data, 0, all, 1, data.length);
    return all;
  }

  /** Writes a structured hole chunk for the whole request; the caller holds the lock. */
  private void writeHole(Request request, int length) throws IOException {
    header.clear();
    Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.OFFSET_HOLE, request.cookie(), 12);
    header.putLong(request.offset()).putInt(length);
    wire.write(header.flip());
  }

  private void readZeroes(Request request, int length) throws IOException {
    if (structured) {
      lock.lock();
      try {
        writeHole(request, length);
      } finally {
        lock.unlock();
      }
      return;
    }
    ByteBuffer[] zeroes = new ByteBuffer[(length + ZEROES.capacity() - 1) / ZEROES.capacity()];
    for (int i = 0; i < zeroes.length; i++) {
      zeroes[i] = ZEROES.slice(0, Math.min(ZEROES.capacity(), length - i * ZEROES.capacity()));
    }
    readBuffers(request, length, zeroes);
  }

  /**
   * Sends a file region by sendfile after the reply's header ({@link Wire#canSendFile} only).
   * What sendfile leaves (a socket that is full and non-blocking makes it return early) is read
   * into a pool buffer and written the ordinary way, which waits for the client.
   */
  private void readFileRegion(Request request, ReadData.FileRegion region) throws IOException {
    int length = region.length();
    lock.lock();
    try {
      header.clear();
      if (structured) {
        Replies.chunkHeader(header, Chunk.FLAG_DONE, Chunk.OFFSET_DATA, request.cookie(), 8 + length);
        header.putLong(request.offset());
      } else {
        Replies.simpleReply(header, 0, request.cookie());
      }
      wire.write(header.flip());
      long sent = 0;
      for (long n; sent < length && (n = wire.sendFile(region.channel(), region.position() + sent, length - sent)) > 0; ) {
        sent += n;
      }
      regionsSent++;
      if (sent < length) {
        regionsFinishedByCopy++;
        finishByCopy(region, (int) sent);
      }
    } finally {
      lock.unlock();
    }
  }

  /**
   * Writes the region from {@code from} on from a pool buffer. The header and part of the data
   * are out already: if the file cannot give the rest, no error reply is possible any more, and
   * the connection is closed rather than let the client take other bytes for this data.
   */
  private void finishByCopy(ReadData.FileRegion region, int from) throws IOException {
    ByteBuffer rest = pool.take(region.length() - from);
    try {
      try {
        readRegion(region, rest, from);
      } catch (IOException e) {
        log.warn("closing the connection: a READ reply is cut short: {}", e.getMessage());
        wire.close();
        throw e;
      }
      wire.write(rest.flip());
    } finally {
      pool.give(rest);
    }
  }

  /** Fills {@code buffer} with the region's bytes from {@code from} on. */
  static void readRegion(ReadData.FileRegion region, ByteBuffer buffer, int from) throws IOException {
    long at = region.position() + from;
    while (buffer.hasRemaining()) {
      int n = region.channel().read(buffer, at);
      if (n < 0) {
        throw new NbdException(Errno.EIO, "unexpected end of file at offset " + at);
      }
      at += n;
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

  private static boolean isAllZero(ByteBuffer... data) {
    boolean any = false;
    for (ByteBuffer buffer : data) {
      int position = buffer.position();
      int limit = buffer.limit();
      for (int from = position; from < limit; from += ZEROES.capacity()) {
        int n = Math.min(ZEROES.capacity(), limit - from);
        if (buffer.slice(from, n).mismatch(ZEROES.slice(0, n)) >= 0) {
          return false;
        }
      }
      any |= limit > position;
    }
    return any;
  }
}
