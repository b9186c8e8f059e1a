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
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.TransmissionFlag;
import io.jnbd.protocol.Request;
import io.jnbd.util.DirectBufferPool;
import io.jnbd.util.Emulation;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The top of the layer stack as one connection sees it: the opened {@link Export}, its
 * capabilities asked once, and the server's emulation of what a layer leaves to it (FUA by
 * flush, zero by writing zeroes, cache by reading). Everything here runs after the request has
 * been validated against these same capabilities.
 */
final class ServedExport implements AutoCloseable {
  final Export export;
  final String name;
  final long size;
  final boolean readOnly;
  final boolean canFlush;
  final Support fua;
  final boolean canTrim;
  final Support zero;
  final boolean canFastZero;
  final boolean canExtents;
  final Support cache;
  final boolean multiConn;
  final boolean rotational;
  final BlockSize blockSize;

  private ServedExport(Export export, String name, boolean serverReadOnly, boolean oneConnectionAtATime) throws IOException {
    this.export = export;
    this.name = name;
    this.size = export.size();
    if (size < 0) {
      throw new NbdException(Errno.EIO, "export reports a negative size");
    }
    this.readOnly = serverReadOnly || !export.canWrite();
    this.canFlush = export.canFlush();
    this.fua = readOnly ? Support.NONE : export.canFua();
    this.canTrim = !readOnly && export.canTrim();
    this.zero = readOnly ? Support.NONE : export.canZero();
    this.canFastZero = zero != Support.NONE && export.canFastZero();
    this.canExtents = export.canExtents();
    this.cache = export.canCache();
    // A read-only export cannot diverge between connections through us. Where connections are
    // served one at a time, as nbdkit does, none is advertised: a client would wait for ever for
    // its second connection.
    this.multiConn = !oneConnectionAtATime && (readOnly || export.canMultiConn());
    this.rotational = export.isRotational();
    BlockSize advertised = export.blockSize();
    this.blockSize = advertised != null ? advertised : BlockSize.DEFAULT;
  }

  /** Opens the named export through the stack and reads its capabilities. */
  static ServedExport open(Stack stack, String name, boolean serverReadOnly) throws IOException {
    Export export = stack.open(serverReadOnly, name);
    try {
      return new ServedExport(export, name, serverReadOnly, stack.threadModel() == ThreadModel.SERIALIZE_CONNECTIONS);
    } catch (IOException | RuntimeException e) {
      try {
        export.close();
      } catch (IOException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  /** The transmission flags that describe this export; DF only with structured replies. */
  int transmissionFlags(boolean structuredReplies) {
    int flags = TransmissionFlag.HAS_FLAGS;
    if (readOnly) flags |= TransmissionFlag.READ_ONLY;
    if (canFlush) flags |= TransmissionFlag.SEND_FLUSH;
    if (fua != Support.NONE) flags |= TransmissionFlag.SEND_FUA;
    if (rotational) flags |= TransmissionFlag.ROTATIONAL;
    if (canTrim) flags |= TransmissionFlag.SEND_TRIM;
    if (zero != Support.NONE) flags |= TransmissionFlag.SEND_WRITE_ZEROES;
    if (canFastZero) flags |= TransmissionFlag.SEND_FAST_ZERO;
    if (structuredReplies) flags |= TransmissionFlag.SEND_DF;
    if (multiConn) flags |= TransmissionFlag.CAN_MULTI_CONN;
    if (cache != Support.NONE) flags |= TransmissionFlag.SEND_CACHE;
    return flags;
  }

  /** The largest READ or WRITE payload accepted. */
  long maxPayload() {
    return Math.min(Integer.toUnsignedLong(blockSize.maximum()), DirectBufferPool.maxSize());
  }

  /**
   * The bytes of pool buffers that a valid request holds while it runs: its payload or its
   * reply's data, or the scratch buffer of an emulated CACHE.
   */
  int bufferBytes(Request request) {
    return switch (request.type()) {
      case Cmd.READ, Cmd.WRITE -> DirectBufferPool.capacityFor((int) request.length());
      case Cmd.CACHE -> cache == Support.EMULATE ? DirectBufferPool.capacityFor(Emulation.CHUNK) : 0;
      default -> 0;
    };
  }

  void pread(ByteBuffer buffer, long offset) throws IOException {
    export.pread(buffer, offset);
    if (buffer.hasRemaining()) {
      throw new NbdException(Errno.EIO, "short read from the export");
    }
  }

  /** The READ's bytes without a copy, or null when the layers below leave it to {@link #pread}. */
  ReadData readData(long offset, int length) throws IOException {
    return export.readData(offset, length);
  }

  void pwrite(ByteBuffer buffer, long offset, boolean fuaRequested) throws IOException {
    export.pwrite(buffer, offset, nativeFua(fuaRequested));
    flushIfEmulatingFua(fuaRequested);
  }

  void flush() throws IOException {
    export.flush();
  }

  void trim(long offset, long length, boolean fuaRequested) throws IOException {
    export.trim(offset, length, nativeFua(fuaRequested));
    flushIfEmulatingFua(fuaRequested);
  }

  void zero(long offset, long length, boolean fuaRequested, boolean mayTrim, boolean fast) throws IOException {
    if (zero == Support.NATIVE) {
      int flags = nativeFua(fuaRequested) | (mayTrim ? Flags.MAY_TRIM : 0) | (fast ? Flags.FAST_ZERO : 0);
      try {
        export.zero(offset, length, flags);
        flushIfEmulatingFua(fuaRequested);
        return;
      } catch (NbdException e) {
        if (fast || e.errno() != Errno.ENOTSUP) {
          throw e;
        }
      }
    } else if (fast) {
      throw new NbdException(Errno.ENOTSUP, "fast zero is not supported by this export");
    }
    Emulation.writeZeroes(export, offset, length, nativeFua(fuaRequested));
    flushIfEmulatingFua(fuaRequested);
  }

  void extents(long offset, long length, boolean reqOne, Extents extents) throws IOException {
    if (canExtents) {
      export.extents(offset, length, reqOne ? Flags.REQ_ONE : 0, extents);
    }
    if (extents.count() == 0) {
      extents.add(offset, length, Extents.DATA);
    }
  }

  void cache(long offset, long length, DirectBufferPool pool) throws IOException {
    switch (cache) {
      case NATIVE -> export.cache(offset, length);
      case EMULATE -> Emulation.readAndDiscard(export, offset, length, pool);
      case NONE -> {
        // Not advertised; some clients send it anyway, and a hint may be ignored.
      }
    }
  }

  private int nativeFua(boolean fuaRequested) {
    return fuaRequested && fua == Support.NATIVE ? Flags.FUA : 0;
  }

  private void flushIfEmulatingFua(boolean fuaRequested) throws IOException {
    if (fuaRequested && fua == Support.EMULATE) {
      export.flush();
    }
  }

  @Override
  public void close() throws IOException {
    export.close();
  }
}
