package io.jnbd.filters;

import java.time.Duration;

/**
 * How a filter waits (retry back-off, injected delays): the real clock in service, a recording
 * double in tests, so that no test sleeps. A sleep is interrupted when the server gives up
 * waiting for a request at shutdown.
 */
@FunctionalInterface
public interface Sleeper {
  Sleeper REAL = Thread::sleep;

  void sleep(Duration duration) throws InterruptedException;
}
