package io.jnbd.plugins.http;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Time for retries that passes only when they sleep, and at once: outages of seconds take
 * milliseconds, and every wait can be checked exactly. Actions scheduled with {@link #at} run
 * inside the sleep that reaches their time, before it returns. Sleeps of concurrent threads add
 * up, as if they took turns: an outage of 2 s ends sooner for many readers than for one.
 */
final class FakePacer implements RetryPolicy.Pacer {
  private final AtomicLong nanos = new AtomicLong();
  private final List<Scheduled> scheduled = new CopyOnWriteArrayList<>();
  final List<Duration> sleeps = new CopyOnWriteArrayList<>();

  private record Scheduled(long atNanos, Runnable action) {}

  @Override
  public long nanoTime() {
    return nanos.get();
  }

  @Override
  public void sleep(Duration duration) {
    sleeps.add(duration);
    long now = nanos.addAndGet(duration.toNanos());
    for (Scheduled due : scheduled) {
      if (due.atNanos() <= now && scheduled.remove(due)) {
        due.action().run();
      }
    }
  }

  /** Runs {@code action} once the sleeps have added up to {@code elapsed}. */
  void at(Duration elapsed, Runnable action) {
    scheduled.add(new Scheduled(elapsed.toNanos(), action));
  }

  /** The sum of all sleeps so far. */
  Duration elapsed() {
    return Duration.ofNanos(nanos.get());
  }
}
