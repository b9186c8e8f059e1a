package io.jnbd.filters;

import java.util.concurrent.TimeUnit;

/** How a filter waits, injected so that tests run on time of their own instead of the clock's. */
@FunctionalInterface
public interface Sleeper {
  Sleeper SYSTEM = TimeUnit.NANOSECONDS::sleep;

  void sleep(long nanos) throws InterruptedException;
}
