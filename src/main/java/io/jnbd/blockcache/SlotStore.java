package io.jnbd.blockcache;

import io.jnbd.util.SparseTempFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Fixed-size slots that hold cached blocks, numbered from 0. Java cannot punch holes into a
 * file, so a bounded cache reuses slots instead of freeing file ranges; slot i lives at byte
 * {@code i * blockSize} of a sparse temporary file, or in a direct buffer allocated on first use.
 * Callers guarantee that no two threads write one slot at once.
 */
abstract sealed class SlotStore implements AutoCloseable {
  final int blockSize;

  SlotStore(int blockSize) {
    this.blockSize = blockSize;
  }

  /** Copies {@code dst.remaining()} bytes from the slot, starting {@code at} bytes into it. */
  abstract void read(int slot, int at, ByteBuffer dst) throws IOException;

  /** Copies the remaining bytes of {@code src} into the slot, starting {@code at} bytes into it. */
  abstract void write(int slot, int at, ByteBuffer src) throws IOException;

  @Override
  public abstract void close() throws IOException;

  static SlotStore create(boolean inMemory, int blockSize, int slots) throws IOException {
    return inMemory ? new Memory(blockSize, slots) : new TempFile(blockSize);
  }

  static final class TempFile extends SlotStore {
    private final SparseTempFile file;

    TempFile(int blockSize) throws IOException {
      super(blockSize);
      file = SparseTempFile.create(null, "jnbd-cache");
    }

    @Override
    void read(int slot, int at, ByteBuffer dst) throws IOException {
      file.read((long) slot * blockSize + at, dst);
    }

    @Override
    void write(int slot, int at, ByteBuffer src) throws IOException {
      file.write((long) slot * blockSize + at, src);
    }

    @Override
    public void close() throws IOException {
      file.close();
    }
  }

  static final class Memory extends SlotStore {
    /** Allocated on first use, so an unbounded cache costs only what it holds. */
    private final AtomicReferenceArray<ByteBuffer> slots;

    Memory(int blockSize, int slots) {
      super(blockSize);
      this.slots = new AtomicReferenceArray<>(slots);
    }

    private ByteBuffer slot(int slot) {
      ByteBuffer buffer = slots.get(slot);
      if (buffer == null) {
        // The loser of a race for a first use takes the winner's buffer, so no write is lost.
        ByteBuffer fresh = ByteBuffer.allocateDirect(blockSize);
        buffer = slots.compareAndExchange(slot, null, fresh);
        if (buffer == null) {
          buffer = fresh;
        }
      }
      return buffer;
    }

    @Override
    void read(int slot, int at, ByteBuffer dst) {
      dst.put(slot(slot).slice(at, dst.remaining()));
    }

    @Override
    void write(int slot, int at, ByteBuffer src) {
      slot(slot).put(at, src, src.position(), src.remaining());
      src.position(src.limit());
    }

    @Override
    public void close() {
      for (int i = 0; i < slots.length(); i++) {
        slots.set(i, null);
      }
    }
  }
}
