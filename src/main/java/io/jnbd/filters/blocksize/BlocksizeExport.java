package io.jnbd.filters.blocksize;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import io.jnbd.filters.blocksize.BlocksizeFilter.Limits;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One connection's view through the blocksize filter: every call below is aligned to the block
 * and within the limits. Unaligned heads and tails of writes and zeroes go through {@link
 * #modifyBlock} under the block's exclusive lock, and aligned writes hold their range shared (see
 * {@link RangeLocks}), so no write is lost to a concurrent read-modify-write of a shared block.
 */
final class BlocksizeExport extends FilterExport {
  private final Limits limits;
  private final RangeLocks locks;
  /** Whether any read-modify-write can happen: without it no write needs a lock. */
  private final boolean locking;

  BlocksizeExport(Export next, Limits limits, RangeLocks locks) {
    super(next);
    this.limits = limits;
    this.locks = locks;
    this.locking = limits.block() > 1;
  }

  @Override
  public long size() throws IOException {
    return limits.alignDown(next.size());
  }

  @Override
  public BlockSize blockSize() throws IOException {
    BlockSize below = next.blockSize();
    int preferred = below != null ? below.preferred() : BlockSize.DEFAULT.preferred();
    // Any request is accepted; the maximum is nbdkit's "no limit", the protocol's 32-bit length.
    return new BlockSize(1, Math.max(preferred, limits.block()), (int) BlocksizeFilter.MAX_REQUEST);
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    long at = offset;
    if (!limits.aligned(at) && buffer.hasRemaining()) {
      at = readPartOfBlock(buffer, at);
    }
    while (buffer.remaining() >= limits.block()) {
      int length = bodyLength(buffer.remaining(), limits.data());
      next.pread(buffer.slice(buffer.position(), length), at);
      buffer.position(buffer.position() + length);
      at += length;
    }
    if (buffer.hasRemaining()) {
      readPartOfBlock(buffer, at);
    }
  }

  /**
   * The layer below's bytes when the READ goes below as it is (aligned, and at most maxdata);
   * one that is widened or split comes through {@link #pread}.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    boolean asItIs = limits.aligned(offset) && limits.aligned(length) && length <= limits.data();
    return asItIs ? next.readData(offset, length) : null;
  }

  /** Reads the block around {@code offset} and copies what the buffer wants of it. */
  private long readPartOfBlock(ByteBuffer buffer, long offset) throws IOException {
    long blockStart = limits.alignDown(offset);
    int skip = (int) (offset - blockStart);
    int wanted = Math.min(limits.block() - skip, buffer.remaining());
    ByteBuffer block = ByteBuffer.allocate(limits.block());
    next.pread(block, blockStart);
    buffer.put(block.position(skip).limit(skip + wanted));
    return offset + wanted;
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    FuaPlan fua = fuaPlan(flags);
    long at = offset;
    if (!limits.aligned(at) && buffer.hasRemaining()) {
      at = modifyBlock(at, buffer.remaining(), buffer, fua.pieceFlags());
    }
    while (buffer.remaining() >= limits.block()) {
      int length = bodyLength(buffer.remaining(), limits.data());
      RangeLocks.Range range = lockShared(at, length);
      try {
        next.pwrite(buffer.slice(buffer.position(), length), at, fua.pieceFlags());
      } finally {
        unlock(range);
      }
      buffer.position(buffer.position() + length);
      at += length;
    }
    if (buffer.hasRemaining()) {
      modifyBlock(at, buffer.remaining(), buffer, fua.pieceFlags());
    }
    finish(fua);
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    if (Flags.has(flags, Flags.FAST_ZERO) && (!limits.aligned(offset) || !limits.aligned(length) || length > limits.length())) {
      // A zero done in pieces, partly by writing, is not fast.
      throw new NbdException(Errno.ENOTSUP, "blocksize: an unaligned or split zero is not fast");
    }
    FuaPlan fua = fuaPlan(flags);
    int rmwFlags = fua.pieceFlags() & Flags.FUA;
    long at = offset;
    long end = offset + length;
    if (!limits.aligned(at) && at < end) {
      at = modifyBlock(at, end - at, null, rmwFlags);
    }
    at = inAlignedPieces(at, end, (pieceAt, piece) -> next.zero(pieceAt, piece, fua.pieceFlags()));
    if (at < end) {
      modifyBlock(at, end - at, null, rmwFlags);
    }
    finish(fua);
  }

  /**
   * Rewrites the part of one block from {@code offset}, up to {@code length} bytes, with the
   * buffer's next bytes, or with zeroes when {@code source} is null.
   *
   * @return the offset after the part written
   */
  private long modifyBlock(long offset, long length, ByteBuffer source, int flags) throws IOException {
    long blockStart = limits.alignDown(offset);
    int skip = (int) (offset - blockStart);
    int changed = (int) Math.min(limits.block() - skip, length);
    RangeLocks.Range range = locks.exclusive(blockStart, blockStart + limits.block());
    try {
      ByteBuffer block = ByteBuffer.allocate(limits.block());
      next.pread(block, blockStart);
      block.position(skip);
      if (source != null) {
        block.put(source.slice(source.position(), changed));
        source.position(source.position() + changed);
      } else {
        block.put(new byte[changed]);
      }
      next.pwrite(block.clear(), blockStart, flags);
    } finally {
      locks.release(range);
    }
    return offset + changed;
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    // The unaligned head and tail are dropped: a trim is only a hint.
    FuaPlan fua = fuaPlan(flags);
    inAlignedPieces(limits.alignUp(offset), limits.alignDown(offset + length),
        (at, piece) -> next.trim(at, piece, fua.pieceFlags()));
    finish(fua);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    long end = limits.alignUp(offset + length);
    for (long at = limits.alignDown(offset); at < end; ) {
      long piece = Math.min(end - at, limits.length());
      next.cache(at, piece);
      at += piece;
    }
  }

  /** Asks below for the aligned range around the request, at most maxlen of it: less is progress. */
  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    long start = limits.alignDown(offset);
    long end = Math.min(limits.alignUp(offset + length), start + limits.length());
    Extents aligned = new Extents(start, end);
    next.extents(start, end - start, flags, aligned);
    long at = start;
    for (int i = 0; i < aligned.count() && at < extents.end(); i++) {
      extents.add(at, aligned.length(i), aligned.type(i));
      at += aligned.length(i);
    }
  }

  /** A trim or zero of an aligned piece below. */
  private interface PieceCommand {
    void send(long offset, long length) throws IOException;
  }

  /**
   * Sends the whole blocks from {@code at} (aligned) towards {@code end} below, in pieces of at
   * most maxlen, each under its range's shared lock; returns where the whole blocks end.
   */
  private long inAlignedPieces(long at, long end, PieceCommand command) throws IOException {
    while (end - at >= limits.block()) {
      long piece = bodyLength(end - at, limits.length());
      RangeLocks.Range range = lockShared(at, piece);
      try {
        command.send(at, piece);
      } finally {
        unlock(range);
      }
      at += piece;
    }
    return at;
  }

  /** The aligned part of what remains, at most {@code limit} (a multiple of the block). */
  private int bodyLength(long remaining, long limit) {
    return (int) Math.min(limits.alignDown(remaining), limit);
  }

  private RangeLocks.Range lockShared(long offset, long length) throws IOException {
    return locking ? locks.shared(offset, offset + length) : null;
  }

  private void unlock(RangeLocks.Range range) {
    if (range != null) {
      locks.release(range);
    }
  }

  /**
   * FUA for a request done in pieces. Where the layer below honours FUA natively every piece
   * carries it; where it only emulates it by a flush, one flush after the last piece does.
   */
  private FuaPlan fuaPlan(int flags) throws IOException {
    boolean flushAfter = Flags.has(flags, Flags.FUA) && next.canFua() != Support.NATIVE;
    return new FuaPlan(flushAfter ? flags & ~Flags.FUA : flags, flushAfter);
  }

  private record FuaPlan(int pieceFlags, boolean flushAfter) {}

  private void finish(FuaPlan fua) throws IOException {
    if (fua.flushAfter()) {
      next.flush();
    }
  }
}
