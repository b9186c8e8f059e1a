package io.jnbd.cli;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.FileChannel;

/** The process's stdin and stdout as one channel, for -s (a client connected through a pipe or socket pair). */
final class StdioChannel implements ByteChannel {
  private final FileChannel in = new FileInputStream(FileDescriptor.in).getChannel();
  private final FileChannel out = new FileOutputStream(FileDescriptor.out).getChannel();

  @Override
  public int read(ByteBuffer dst) throws IOException {
    return in.read(dst);
  }

  @Override
  public int write(ByteBuffer src) throws IOException {
    return out.write(src);
  }

  @Override
  public boolean isOpen() {
    return in.isOpen() && out.isOpen();
  }

  @Override
  public void close() throws IOException {
    try (in) {
      out.close();
    }
  }
}
