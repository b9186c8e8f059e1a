package io.jnbd.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.api.ReadData;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Reading an export directly, as the server would, in tests that need no connection: by {@code
 * pread}, or by {@code readData} for layers that pass zero-copy reads on.
 */
public final class Exports {
  private Exports() {}

  /** The {@code length} bytes at {@code offset}; a pread that leaves the buffer short fails the test. */
  public static byte[] read(Export export, long offset, int length) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    export.pread(buffer, offset);
    assertThat(buffer.hasRemaining()).as("bytes left unread by pread").isFalse();
    return buffer.array();
  }

  /**
   * The {@code length} bytes at {@code offset}, which {@code export} must hand over without a
   * copy (a non-null {@code readData}); what it handed over is given back.
   */
  public static byte[] handedOver(Export export, long offset, int length) throws IOException {
    try (ReadData data = export.readData(offset, length)) {
      assertThat(data).as("readData(%d, %d) handed nothing over", offset, length).isNotNull();
      return bytesOf(data);
    }
  }

  /** The bytes of a handed-over READ, in order; the views' positions are left as they were. */
  public static byte[] bytesOf(ReadData data) throws IOException {
    byte[] out = new byte[data.length()];
    switch (data) {
      case ReadData.Views views -> {
        int at = 0;
        for (ByteBuffer view : views.buffers()) {
          view.get(view.position(), out, at, view.remaining());
          at += view.remaining();
        }
      }
      case ReadData.FileRegion region -> {
        ByteBuffer into = ByteBuffer.wrap(out);
        while (into.hasRemaining()) {
          if (region.channel().read(into, region.position() + into.position()) < 0) {
            throw new IOException("the file ends inside the region handed over");
          }
        }
      }
      case ReadData.Zeroes zeroes -> { }
    }
    return out;
  }
}
