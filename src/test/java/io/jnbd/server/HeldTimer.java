package io.jnbd.server;

import java.util.concurrent.Delayed;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RunnableScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The server's timer, with every one-shot task (a handshake limit) held until the test lets it
 * run: a limit passes when the test says, not when the clock does, however loaded the machine.
 * Periodic tasks run as scheduled.
 */
final class HeldTimer extends ScheduledThreadPoolExecutor {
  private final Semaphore released = new Semaphore(0);
  private final Semaphore ran = new Semaphore(0);

  HeldTimer() {
    super(1, Thread.ofPlatform().daemon().name("held-timer").factory());
  }

  /** Lets the next due one-shot task run, and returns once it has. */
  void passNextLimit() throws InterruptedException {
    released.release();
    ran.acquire();
  }

  @Override
  protected <V> RunnableScheduledFuture<V> decorateTask(Runnable runnable, RunnableScheduledFuture<V> task) {
    return task.isPeriodic() ? task : new Held<>(task);
  }

  private final class Held<V> implements RunnableScheduledFuture<V> {
    private final RunnableScheduledFuture<V> task;

    Held(RunnableScheduledFuture<V> task) {
      this.task = task;
    }

    @Override
    public void run() {
      if (task.isCancelled()) {
        return;
      }
      try {
        released.acquire();
      } catch (InterruptedException e) {
        // The server closed and stopped its timer: the task is not wanted any more.
        return;
      }
      try {
        task.run();
      } finally {
        ran.release();
      }
    }

    @Override
    public boolean isPeriodic() {
      return false;
    }

    @Override
    public long getDelay(TimeUnit unit) {
      return task.getDelay(unit);
    }

    @Override
    public int compareTo(Delayed other) {
      return task.compareTo(other instanceof Held<?> held ? held.task : other);
    }

    @Override
    public boolean cancel(boolean mayInterruptIfRunning) {
      return task.cancel(mayInterruptIfRunning);
    }

    @Override
    public boolean isCancelled() {
      return task.isCancelled();
    }

    @Override
    public boolean isDone() {
      return task.isDone();
    }

    @Override
    public V get() throws InterruptedException, ExecutionException {
      return task.get();
    }

    @Override
    public V get(long timeout, TimeUnit unit) throws InterruptedException, ExecutionException, TimeoutException {
      return task.get(timeout, unit);
    }
  }
}
