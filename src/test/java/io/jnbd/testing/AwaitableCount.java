package io.jnbd.testing;

import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A count of events (calls that entered a gate, say) that a test can wait on without polling:
 * each event also releases a permit, and a wait takes the permits it needs and gives them back.
 */
public final class AwaitableCount {
  private final AtomicInteger count = new AtomicInteger();
  private final Semaphore events = new Semaphore(0);

  public int get() {
    return count.get();
  }

  public int incrementAndGet() {
    int now = count.incrementAndGet();
    events.release();
    return now;
  }

  /**
   * Waits until at least {@code wanted} events have happened.
   *
   * @return false if fewer had after {@code limit}: a test fails on that rather than hang
   */
  public boolean awaitAtLeast(int wanted, Duration limit) throws InterruptedException {
    if (!events.tryAcquire(wanted, limit.toNanos(), TimeUnit.NANOSECONDS)) {
      return false;
    }
    events.release(wanted);
    return true;
  }
}
