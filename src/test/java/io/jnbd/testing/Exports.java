package io.jnbd.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Reading an export directly, as the server would, in tests that need no connection. */
public final class Exports {
  private Exports() {}

  /** The {@code length} bytes at {@code offset}; a pread that leaves the buffer short fails the test. */
  public static byte[] read(Export export, long offset, int length) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(length);
    export.pread(buffer, offset);
    assertThat(buffer.hasRemaining()).as("bytes left unread by pread").isFalse();
    return buffer.array();
  }
}
