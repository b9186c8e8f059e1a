package io.jnbd.plugins.nbd;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Flags;
import io.jnbd.api.Support;
import io.jnbd.plugins.nbd.Handshake.ExportInfo;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Nbd.TransmissionFlag;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One client's view of the upstream export: every operation becomes the same NBD command
 * upstream, and every capability is the upstream's. Requests longer than the upstream accepts
 * in one command (its maximum block size for reads and writes, 2 GiB for the others; filters
 * above may ask for more than a client could) are split.
 */
final class UpstreamExport implements Export {
  /** The longest command without payload sent upstream: a power of two, so aligned to any minimum. */
  private static final long MAX_COMMAND_LENGTH = 1L << 31;
  /** Beyond this a single read or write would not fit a Java buffer anyway. */
  private static final long MAX_PAYLOAD = 1L << 30;

  private final NbdClient client;
  private final boolean ownsClient;
  private final ExportInfo info;
  private final int maxPayload;

  /**
   * @param ownsClient whether closing this export closes the connection (false when shared)
   */
  UpstreamExport(NbdClient client, boolean ownsClient) {
    this.client = client;
    this.ownsClient = ownsClient;
    this.info = client.info();
    BlockSize blockSize = info.blockSize() != null ? info.blockSize() : BlockSize.DEFAULT;
    long maximum = Math.min(Integer.toUnsignedLong(blockSize.maximum()), MAX_PAYLOAD);
    this.maxPayload = (int) Math.max(blockSize.minimum(), maximum & -blockSize.minimum());
  }

  @Override
  public long size() {
    return info.size();
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    inSlices(buffer, offset, client::read);
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    int commandFlags = fua(flags);
    inSlices(buffer, offset, (slice, at) -> client.write(slice, at, commandFlags));
  }

  @Override
  public void flush() throws IOException {
    client.command(Cmd.FLUSH, 0, 0, 0);
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    inPieces(Cmd.TRIM, offset, length, fua(flags));
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    int commandFlags = fua(flags)
        | (Flags.has(flags, Flags.MAY_TRIM) ? 0 : CmdFlag.NO_HOLE)
        | (Flags.has(flags, Flags.FAST_ZERO) ? CmdFlag.FAST_ZERO : 0);
    inPieces(Cmd.WRITE_ZEROES, offset, length, commandFlags);
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    inPieces(Cmd.CACHE, offset, length, 0);
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    boolean reqOne = Flags.has(flags, Flags.REQ_ONE);
    long end = offset + length;
    do {
      long from = extents.next();
      long[] reply = client.blockStatus(from, Math.min(end - from, MAX_COMMAND_LENGTH), reqOne ? CmdFlag.REQ_ONE : 0);
      long at = from;
      for (int i = 0; i < reply.length && at < end; i += 2) {
        extents.add(at, reply[i], (int) reply[i + 1] & Extents.HOLE_ZERO);
        at += reply[i];
      }
    } while (!reqOne && !extents.isFull());
  }

  /** A read or write of a slice short enough for one command upstream. */
  private interface SliceCommand {
    void send(ByteBuffer slice, long offset) throws IOException;
  }

  /** The buffer's bytes in slices of at most the upstream's maximum payload, one command each, in order. */
  private void inSlices(ByteBuffer buffer, long offset, SliceCommand command) throws IOException {
    long at = offset;
    while (buffer.hasRemaining()) {
      int n = Math.min(buffer.remaining(), maxPayload);
      command.send(buffer.slice(buffer.position(), n), at);
      buffer.position(buffer.position() + n);
      at += n;
    }
  }

  private void inPieces(int command, long offset, long length, int commandFlags) throws IOException {
    long at = offset;
    long end = offset + length;
    do {
      long n = Math.min(end - at, MAX_COMMAND_LENGTH);
      client.command(command, at, n, commandFlags);
      at += n;
    } while (at < end);
  }

  private static int fua(int flags) {
    return Flags.has(flags, Flags.FUA) ? CmdFlag.FUA : 0;
  }

  @Override
  public boolean canWrite() {
    return !info.has(TransmissionFlag.READ_ONLY);
  }

  @Override
  public boolean canFlush() {
    return info.has(TransmissionFlag.SEND_FLUSH);
  }

  @Override
  public Support canFua() {
    return info.has(TransmissionFlag.SEND_FUA) ? Support.NATIVE : Support.NONE;
  }

  @Override
  public boolean canTrim() {
    return info.has(TransmissionFlag.SEND_TRIM);
  }

  /** Without WRITE_ZEROES upstream, the server writes zeroes, as nbdkit does. */
  @Override
  public Support canZero() {
    if (!canWrite()) {
      return Support.NONE;
    }
    return info.has(TransmissionFlag.SEND_WRITE_ZEROES) ? Support.NATIVE : Support.EMULATE;
  }

  @Override
  public boolean canFastZero() {
    return info.has(TransmissionFlag.SEND_FAST_ZERO);
  }

  @Override
  public boolean canExtents() {
    return info.allocationContext() >= 0;
  }

  @Override
  public Support canCache() {
    return info.has(TransmissionFlag.SEND_CACHE) ? Support.NATIVE : Support.NONE;
  }

  @Override
  public boolean canMultiConn() {
    return info.has(TransmissionFlag.CAN_MULTI_CONN);
  }

  @Override
  public boolean isRotational() {
    return info.has(TransmissionFlag.ROTATIONAL);
  }

  @Override
  public BlockSize blockSize() {
    return info.blockSize();
  }

  @Override
  public void close() {
    if (ownsClient) {
      client.close();
    }
  }
}
