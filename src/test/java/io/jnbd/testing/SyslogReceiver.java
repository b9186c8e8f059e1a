package io.jnbd.testing;

import io.jnbd.util.NativeSockets;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A stand-in for the syslog daemon: a Unix datagram socket bound at a path (as /dev/log is),
 * keeping every datagram it receives. A thread of its own takes them as they come, so a sender
 * never fills the socket's queue and blocks.
 */
public final class SyslogReceiver implements AutoCloseable {
  private final Path path;
  private final int fd;
  private final int[] wake = NativeSockets.pipe();
  private final List<String> messages = new CopyOnWriteArrayList<>();
  private final Thread reader;

  public SyslogReceiver(Path path) throws IOException {
    this.path = path;
    this.fd = NativeSockets.socket(NativeSockets.AF_UNIX, NativeSockets.SOCK_DGRAM);
    NativeSockets.bindUnix(fd, path.toString());
    reader = Thread.ofPlatform().daemon().name("syslog-receiver").start(this::receive);
  }

  public Path path() {
    return path;
  }

  /** Every datagram received so far, in order, as text. */
  public List<String> messages() {
    return List.copyOf(messages);
  }

  private void receive() {
    ByteBuffer datagram = ByteBuffer.allocateDirect(64 * 1024);
    try {
      while ((NativeSockets.poll(fd, NativeSockets.POLLIN, wake[0]) & NativeSockets.POLLIN) != 0) {
        datagram.clear();
        if (NativeSockets.recv(fd, datagram, NativeSockets.MSG_DONTWAIT) > 0) {
          messages.add(StandardCharsets.UTF_8.decode(datagram.flip()).toString());
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public void close() throws IOException, InterruptedException {
    NativeSockets.wake(wake[1]);
    reader.join();
    NativeSockets.close(fd);
    NativeSockets.close(wake[0]);
    NativeSockets.close(wake[1]);
    Files.deleteIfExists(path);
  }
}
