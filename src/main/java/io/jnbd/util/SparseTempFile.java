package io.jnbd.util;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A temporary file that is unlinked as soon as it is open, so its contents vanish with the
 * process however it ends: the backing store of the cache filter's blocks and the cow filter's
 * overlay. It is sparse: bytes never written take no space and read back as zeroes, also past
 * the end of what was written. Positional reads and writes may run from many threads at once.
 */
public final class SparseTempFile implements AutoCloseable {
  private final FileChannel channel;

  private SparseTempFile(FileChannel channel) {
    this.channel = channel;
  }

  /** Creates the file in {@code directory}, or in {@code java.io.tmpdir} when it is null. */
  public static SparseTempFile create(Path directory, String prefix) throws IOException {
    Path path = directory == null
        ? Files.createTempFile(prefix, ".tmp")
        : Files.createTempFile(directory, prefix, ".tmp");
    try {
      return new SparseTempFile(FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE));
    } finally {
      Files.deleteIfExists(path);
    }
  }

  /** Fills {@code dst} from its position to its limit with the bytes at {@code position}. */
  public void read(long position, ByteBuffer dst) throws IOException {
    while (dst.hasRemaining()) {
      int n = channel.read(dst, position);
      if (n < 0) {
        while (dst.hasRemaining()) {
          dst.put((byte) 0);
        }
        return;
      }
      position += n;
    }
  }

  /** Writes the remaining bytes of {@code src} at {@code position}. */
  public void write(long position, ByteBuffer src) throws IOException {
    while (src.hasRemaining()) {
      position += channel.write(src, position);
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }
}
