package io.jnbd.api;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * The bytes of one READ as a layer hands them to the server without first copying them into a
 * buffer (see {@link Export#readData}): a region of a file, read-only views of memory the layer
 * owns, or zeroes. The server writes them to the client and then calls {@link #close} exactly
 * once, whether the reply went out or not. Until then the bytes must stay readable: memory behind
 * a view must not be freed or reused for other data. They may still change meanwhile, as they may
 * under any read that runs alongside a write to the same range: the server reads them after
 * {@code readData} has returned, outside the layer's thread model, so a layer hands over only
 * bytes that may be read from any thread at any time until the close.
 */
public sealed interface ReadData extends AutoCloseable permits ReadData.FileRegion, ReadData.Views, ReadData.Zeroes {

  /** The number of bytes: always the length that was asked for. */
  int length();

  /** Gives back what the bytes held; the server never touches them afterwards. */
  @Override
  default void close() {}

  /**
   * {@code length} bytes of {@code channel}'s file from {@code position}. The server may send them
   * with sendfile(2) (on a plain socket) or read them with {@link FileChannel#read(ByteBuffer,
   * long)}; either way the layer's own modes are bypassed, so a layer offers a region only where
   * such a read means the same as its {@link Export#pread}. The file must hold the whole range: if
   * it has shrunk when the server gets there, the client may see its connection closed instead
   * of an error, since part of the reply may already have gone. {@code release} runs at {@link
   * #close}.
   */
  record FileRegion(FileChannel channel, long position, int length, Runnable release) implements ReadData {
    /** A region with nothing to give back at its close. */
    public FileRegion(FileChannel channel, long position, int length) {
      this(channel, position, length, () -> {});
    }

    @Override
    public void close() {
      release.run();
    }
  }

  /**
   * Read-only buffers whose remaining bytes, in order, are the data; {@code release} runs at
   * {@link #close}. The server consumes the buffers (moves their positions) as it writes them.
   */
  record Views(ByteBuffer[] buffers, int length, Runnable release) implements ReadData {
    @Override
    public void close() {
      release.run();
    }
  }

  /** {@code length} zero bytes; the server may send them as a hole (structured replies). */
  record Zeroes(int length) implements ReadData {}
}
