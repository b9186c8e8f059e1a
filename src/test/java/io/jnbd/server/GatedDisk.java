package io.jnbd.server;

import io.jnbd.api.Export;
import io.jnbd.api.ThreadModel;
import io.jnbd.testing.AwaitableCount;
import io.jnbd.testing.TestPlugin;
import java.nio.ByteBuffer;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;

/**
 * A writable 1 MiB export of 0x55 bytes whose reads and writes wait at a gate until the test opens it, and
 * which counts the calls that entered and left, so tests can see what the server lets through.
 */
final class GatedDisk extends TestPlugin {
  static final int SIZE = 1 << 20;

  /** Opened by counting down; {@link #closeGate} puts a new, closed one in its place. */
  volatile CountDownLatch gate = new CountDownLatch(1);
  final AwaitableCount entered = new AwaitableCount();
  final AwaitableCount left = new AwaitableCount();
  /** The thread that ran the latest read or write. */
  volatile Thread lastCaller;
  /** Every thread that ran a read or write, in order. */
  final Queue<Thread> callers = new ConcurrentLinkedQueue<>();
  private final ThreadModel threadModel;

  GatedDisk(ThreadModel threadModel) {
    super("gated", "test export that waits at a gate");
    this.threadModel = threadModel;
  }

  @Override
  public ThreadModel threadModel() {
    return threadModel;
  }

  @Override
  public Export open(boolean readOnly, String exportName) {
    return new Export() {
      @Override
      public long size() {
        return SIZE;
      }

      @Override
      public void pread(ByteBuffer buffer, long offset) {
        pass();
        // Not zeroes, which go out as a small hole chunk: a read's reply here is as long as the read.
        while (buffer.hasRemaining()) {
          buffer.put((byte) 0x55);
        }
      }

      @Override
      public void pwrite(ByteBuffer buffer, long offset, int flags) {
        pass();
      }

      @Override
      public boolean canWrite() {
        return true;
      }
    };
  }

  void closeGate() {
    gate = new CountDownLatch(1);
  }

  private void pass() {
    lastCaller = Thread.currentThread();
    callers.add(lastCaller);
    entered.incrementAndGet();
    try {
      gate.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      left.incrementAndGet();
    }
  }
}
