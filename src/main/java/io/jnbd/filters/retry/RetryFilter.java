package io.jnbd.filters.retry;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.time.Duration;
import java.util.List;

/**
 * The retry filter, nbdkit's: when a request fails, close the connection's export below, open
 * it again and retry the request, waiting longer each time, up to a number of retries. It makes
 * a long copy from a remote source survive a dropped connection or a restarted server; virt-v2v
 * puts it next to every remote input plugin.
 */
public final class RetryFilter implements Filter {
  private final Sleeper sleeper;
  private int retries = 5;
  private Duration delay = Duration.ofSeconds(2);
  private boolean exponential = true;
  private boolean reopenReadOnly;
  private RetryPolicy policy;

  public RetryFilter() {
    this(Sleeper.REAL);
  }

  RetryFilter(Sleeper sleeper) {
    this.sleeper = sleeper;
  }

  @Override
  public String name() {
    return "retry";
  }

  @Override
  public String description() {
    return "reopen the export below and retry when a request fails";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("retries", "N", "How many times one request is retried before its error goes to the client (default 5)."),
        new Parameter("retry-delay", "SECS|NNms", "The wait before the first retry, in seconds unless a unit (ms, us, ns) follows; not 0 (default 2)."),
        new Parameter("retry-exponential", "yes|no", "Double the wait before each further retry (default yes)."),
        new Parameter("retry-readonly", "yes|no", "After the first failure, reopen read-only and fail writes for the rest of the connection (default no)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "retries" -> retries = Values.parseInt("retry: " + key, value, 0, Integer.MAX_VALUE);
      case "retry-delay" -> delay = positiveDelay("retry: " + key, value);
      case "retry-exponential" -> exponential = Values.parseBool("retry: " + key, value);
      case "retry-readonly" -> reopenReadOnly = Values.parseBool("retry: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    policy = new RetryPolicy(retries, delay, exponential);
  }

  /** A retry delay as nbdkit takes it: any delay but none at all. */
  static Duration positiveDelay(String what, String value) {
    Duration parsed = Values.parseDelay(what, value);
    if (parsed.isZero()) {
      throw new ConfigException(what + ": cannot be 0");
    }
    return parsed;
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export first = next.open(readOnly, exportName);
    try {
      return new ReopeningExport(first, next, readOnly, exportName,
          policy, reopenReadOnly, sleeper);
    } catch (IOException | RuntimeException e) {
      first.close();
      throw e;
    }
  }
}
