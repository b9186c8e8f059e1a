package io.jnbd.server;

import io.jnbd.util.NativeSockets;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A connected stream socket that the JDK cannot open (AF_VSOCK), as a channel over its raw
 * descriptor. Reads and writes never block in the kernel's recv or send: they try without
 * waiting and, when the socket is not ready, wait in poll. A virtual thread (a request writing
 * its reply) must not block in a native call, which would hold its carrier, so it waits for poll
 * on a platform thread instead.
 *
 * <p>Closing shuts the socket down, which ends a read or write in progress, and closes the
 * descriptor only once the last such call has returned, so that a descriptor number reused
 * meanwhile is never read or written.
 */
final class NativeStreamChannel implements ByteChannel {
  /** Where virtual threads wait for a socket to become ready. */
  private static final ExecutorService WAITERS =
      Executors.newCachedThreadPool(Thread.ofPlatform().daemon().name("native-socket-wait-", 0).factory());
  private static final int SCRATCH_BYTES = 64 * 1024;

  private final int fd;
  /** Calls in progress, plus one while open; the descriptor closes when it reaches 0. */
  private final AtomicInteger holds = new AtomicInteger(1);
  private final AtomicBoolean closed = new AtomicBoolean();
  /** For heap buffers, which native calls cannot take: one each way, as a read and a write may overlap. */
  private ByteBuffer readScratch;
  private ByteBuffer writeScratch;

  NativeStreamChannel(int fd) {
    this.fd = fd;
  }

  @Override
  public int read(ByteBuffer dst) throws IOException {
    if (!dst.hasRemaining()) {
      return 0;
    }
    hold();
    try {
      if (dst.isDirect()) {
        return receive(dst);
      }
      if (readScratch == null) {
        readScratch = ByteBuffer.allocateDirect(SCRATCH_BYTES);
      }
      readScratch.clear().limit(Math.min(SCRATCH_BYTES, dst.remaining()));
      int n = receive(readScratch);
      if (n > 0) {
        dst.put(readScratch.flip());
      }
      return n;
    } finally {
      release();
    }
  }

  private int receive(ByteBuffer dst) throws IOException {
    while (true) {
      int n = NativeSockets.recv(fd, dst, NativeSockets.MSG_DONTWAIT);
      if (n == 0) {
        return -1;
      }
      if (n > 0) {
        return n;
      }
      awaitReady(NativeSockets.POLLIN);
    }
  }

  @Override
  public int write(ByteBuffer src) throws IOException {
    hold();
    try {
      if (src.isDirect()) {
        return send(src);
      }
      if (writeScratch == null) {
        writeScratch = ByteBuffer.allocateDirect(SCRATCH_BYTES);
      }
      int start = src.position();
      writeScratch.clear().put(src.slice(start, Math.min(SCRATCH_BYTES, src.remaining()))).flip();
      int n = send(writeScratch);
      src.position(start + n);
      return n;
    } finally {
      release();
    }
  }

  private int send(ByteBuffer src) throws IOException {
    while (src.hasRemaining()) {
      int n = NativeSockets.send(fd, src, NativeSockets.MSG_DONTWAIT);
      if (n >= 0) {
        return n;
      }
      awaitReady(NativeSockets.POLLOUT);
    }
    return 0;
  }

  private void awaitReady(short events) throws IOException {
    if (closed.get()) {
      throw new ClosedChannelException();
    }
    if (!Thread.currentThread().isVirtual()) {
      NativeSockets.poll(fd, events, -1);
      return;
    }
    try {
      CompletableFuture.runAsync(() -> {
        try {
          NativeSockets.poll(fd, events, -1);
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      }, WAITERS).get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for the socket");
    } catch (ExecutionException e) {
      throw e.getCause() instanceof java.io.UncheckedIOException unchecked ? unchecked.getCause()
          : new IOException(e.getCause());
    }
  }

  private void hold() throws ClosedChannelException {
    int current;
    do {
      current = holds.get();
      if (current == 0 || closed.get()) {
        throw new ClosedChannelException();
      }
    } while (!holds.compareAndSet(current, current + 1));
  }

  private void release() {
    if (holds.decrementAndGet() == 0) {
      NativeSockets.close(fd);
    }
  }

  /** Makes a read see end of stream (now, or while it waits), leaving writes free to go out. */
  void shutdownInput() {
    try {
      hold();
    } catch (ClosedChannelException alreadyClosed) {
      return;
    }
    try {
      NativeSockets.shutdown(fd, NativeSockets.SHUT_RD);
    } catch (IOException alreadyDisconnected) {
      // Then reads end anyway.
    } finally {
      release();
    }
  }

  @Override
  public boolean isOpen() {
    return !closed.get();
  }

  /** Shuts the socket down, which wakes a read or write in progress, and closes it once none is. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      NativeSockets.shutdown(fd, NativeSockets.SHUT_RDWR);
    } catch (IOException alreadyDisconnected) {
      // Nothing to wake.
    }
    release();
  }
}
