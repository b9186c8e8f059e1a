package io.jnbd.plugins;

import io.jnbd.api.Export;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A read-only disk whose every 8-byte aligned word holds its own offset as a big-endian 64-bit
 * number, so any byte tells where it came from: byte {@code i} is byte {@code i % 8} of
 * BE64({@code i - i % 8}). Useful to catch clients and filters that read the wrong place.
 */
public final class PatternPlugin extends SizedPlugin {
  public PatternPlugin() {
    super(REQUIRED, "Virtual size of the disk (required).");
  }

  @Override
  public String name() {
    return "pattern";
  }

  @Override
  public String description() {
    return "read-only disk where each 8-byte word holds its own offset (big-endian)";
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new PatternExport(size());
  }

  /** Fills {@code buffer} with the pattern bytes that start at {@code offset}. */
  static void fill(ByteBuffer buffer, long offset) {
    long at = offset;
    while (buffer.hasRemaining() && (at & 7) != 0) {
      buffer.put(patternByte(at++));
    }
    if (buffer.remaining() >= 8) {
      // A big-endian view writes whole words at once; the caller's buffer keeps its own order.
      ByteBuffer words = buffer.slice().order(ByteOrder.BIG_ENDIAN);
      int count = words.remaining() >>> 3;
      for (int i = 0; i < count; i++) {
        words.putLong(at);
        at += 8;
      }
      buffer.position(buffer.position() + (count << 3));
    }
    while (buffer.hasRemaining()) {
      buffer.put(patternByte(at++));
    }
  }

  static byte patternByte(long offset) {
    long word = offset & ~7L;
    return (byte) (word >>> (8 * (7 - (int) (offset & 7))));
  }

  /** Computed on demand, so {@link InMemoryExport}'s no-op cache hint is truthful. */
  private record PatternExport(long size) implements InMemoryExport {
    @Override
    public void pread(ByteBuffer buffer, long offset) {
      fill(buffer, offset);
    }
  }
}
