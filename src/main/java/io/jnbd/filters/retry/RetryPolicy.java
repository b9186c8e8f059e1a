package io.jnbd.filters.retry;

import java.time.Duration;

/**
 * How often and how patiently a failed request is tried again.
 *
 * @param retries how many times one request is retried after its first attempt failed
 * @param delay the wait before the first retry
 * @param exponential whether each further wait is twice the one before
 */
record RetryPolicy(int retries, Duration delay, boolean exponential) {
  Duration after(Duration previous) {
    return exponential ? previous.multipliedBy(2) : previous;
  }
}
