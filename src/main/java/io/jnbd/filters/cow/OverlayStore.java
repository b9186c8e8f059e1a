package io.jnbd.filters.cow;

import io.jnbd.util.SparseTempFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The bytes of an overlay's allocated blocks: block i at byte {@code i * blockSize} of a sparse
 * temporary file, or in a direct buffer allocated when the block is first written. The overlay's
 * block locks keep a writer of a block apart from everyone else using it.
 */
abstract sealed class OverlayStore implements AutoCloseable {
  final int blockSize;

  OverlayStore(int blockSize) {
    this.blockSize = blockSize;
  }

  /** Copies {@code dst.remaining()} bytes of the block, from {@code at} bytes into it. */
  abstract void read(long block, int at, ByteBuffer dst) throws IOException;

  /** Copies the remaining bytes of {@code src} into the block, from {@code at} bytes into it. */
  abstract void write(long block, int at, ByteBuffer src) throws IOException;

  /** The block's bytes are no longer needed (it reads as zeroes now). */
  abstract void release(long block);

  @Override
  public abstract void close() throws IOException;

  /** @param directory where a file store lives; ignored for memory */
  static OverlayStore create(boolean inMemory, int blockSize, Path directory) throws IOException {
    return inMemory ? new Memory(blockSize) : new TempFile(blockSize, directory);
  }

  static final class TempFile extends OverlayStore {
    private final SparseTempFile file;

    TempFile(int blockSize, Path directory) throws IOException {
      super(blockSize);
      file = SparseTempFile.create(directory, "jnbd-cow");
    }

    @Override
    void read(long block, int at, ByteBuffer dst) throws IOException {
      file.read(block * blockSize + at, dst);
    }

    @Override
    void write(long block, int at, ByteBuffer src) throws IOException {
      file.write(block * blockSize + at, src);
    }

    @Override
    void release(long block) {
      // Java cannot punch a hole; the space is reused if the block is written again.
    }

    @Override
    public void close() throws IOException {
      file.close();
    }
  }

  static final class Memory extends OverlayStore {
    private final ConcurrentHashMap<Long, ByteBuffer> blocks = new ConcurrentHashMap<>();

    Memory(int blockSize) {
      super(blockSize);
    }

    @Override
    void read(long block, int at, ByteBuffer dst) {
      int length = dst.remaining();
      dst.put(dst.position(), blocks.get(block), at, length);
      dst.position(dst.position() + length);
    }

    @Override
    void write(long block, int at, ByteBuffer src) {
      ByteBuffer bytes = blocks.computeIfAbsent(block, b -> ByteBuffer.allocateDirect(blockSize));
      int length = src.remaining();
      bytes.put(at, src, src.position(), length);
      src.position(src.position() + length);
    }

    @Override
    void release(long block) {
      blocks.remove(block);
    }

    @Override
    public void close() {
      blocks.clear();
    }
  }
}
