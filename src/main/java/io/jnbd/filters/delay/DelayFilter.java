package io.jnbd.filters.delay;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Flags;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.GatedExport;
import io.jnbd.filters.GatedExport.Operation;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The delay filter, nbdkit's: waits a fixed time before passing each request of a kind down, to
 * make a local plugin behave like a slow or remote one, or to widen a race window in a test.
 * Keys apply in command-line order, a later one overriding an earlier one ({@code wdelay} sets
 * write, zero and trim at once). A READ whose bytes the layer below hands over without a copy
 * waits once they are handed over, before they are read and sent ({@link GatedExport#readData}).
 */
public final class DelayFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(DelayFilter.class);

  private final Sleeper sleeper;
  private Duration read = Duration.ZERO;
  private Duration write = Duration.ZERO;
  private Duration zero = Duration.ZERO;
  private Duration trim = Duration.ZERO;
  private Duration extents = Duration.ZERO;
  private Duration cache = Duration.ZERO;
  private Duration opening = Duration.ZERO;
  private Duration closing = Duration.ZERO;
  private boolean delayFastZero = true;
  private Delays delays = new Delays(read, write, zero, trim, extents, cache, opening, closing, delayFastZero);

  /** The waits, fixed once configured; flush has none, as in nbdkit. */
  record Delays(Duration read, Duration write, Duration zero, Duration trim, Duration extents, Duration cache,
      Duration opening, Duration closing, boolean delayFastZero) {
    Duration before(Operation operation) {
      return switch (operation) {
        case PREAD -> read;
        case PWRITE -> write;
        case ZERO -> zero;
        case TRIM -> trim;
        case EXTENTS -> extents;
        case CACHE -> cache;
      };
    }

    /** A fast zero fails at once rather than wait, when asked to (delay-fast-zero=false). */
    boolean refusesFastZero() {
      return !delayFastZero && !zero.isZero();
    }
  }

  public DelayFilter() {
    this(Sleeper.REAL);
  }

  DelayFilter(Sleeper sleeper) {
    this.sleeper = sleeper;
  }

  @Override
  public String name() {
    return "delay";
  }

  @Override
  public String description() {
    return "wait before each request, to simulate a slow or remote disk";
  }

  @Override
  public List<Parameter> parameters() {
    String delay = "SECS|NNms";
    return List.of(
        new Parameter("rdelay", delay, "Delay reads, in seconds unless a unit (ms, us, ns) follows (default 0); the same as delay-read."),
        new Parameter("delay-read", delay, "Delay reads (default 0)."),
        new Parameter("wdelay", delay, "Delay writes, zeroes and trims (default 0)."),
        new Parameter("delay-write", delay, "Delay writes (default 0)."),
        new Parameter("delay-zero", delay, "Delay zeroes (default 0)."),
        new Parameter("delay-trim", delay, "Delay trims (default 0)."),
        new Parameter("delay-extents", delay, "Delay block status (extents) requests (default 0)."),
        new Parameter("delay-cache", delay, "Delay cache requests (default 0)."),
        new Parameter("delay-fast-zero", "true|false", "Delay a fast zero like any zero (default true); false fails it at once with ENOTSUP when zeroes are delayed."),
        new Parameter("delay-open", delay, "Delay the open of each connection (default 0)."),
        new Parameter("delay-close", delay, "Delay the close of each connection (default 0)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "rdelay", "delay-read" -> read = delay(key, value);
      case "wdelay" -> {
        write = delay(key, value);
        zero = write;
        trim = write;
      }
      case "delay-write" -> write = delay(key, value);
      case "delay-zero" -> zero = delay(key, value);
      case "delay-trim" -> trim = delay(key, value);
      case "delay-extents" -> extents = delay(key, value);
      case "delay-cache" -> cache = delay(key, value);
      case "delay-open" -> opening = delay(key, value);
      case "delay-close" -> closing = delay(key, value);
      case "delay-fast-zero" -> delayFastZero = Values.parseBool("delay: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  private static Duration delay(String key, String value) {
    return Values.parseDelay("delay: " + key, value);
  }

  @Override
  public void configComplete() {
    delays = new Delays(read, write, zero, trim, extents, cache, opening, closing, delayFastZero);
  }

  /** Waits {@code delay}; a wait cut short by a stopping server fails the request. */
  private void await(Duration delay) throws NbdException {
    if (delay.isZero()) {
      return;
    }
    try {
      sleeper.sleep(delay);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NbdException(Errno.ESHUTDOWN, "delay: the server is stopping");
    }
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Delays configured = delays;
    await(configured.opening());
    return new GatedExport(next.open(readOnly, exportName)) {
      @Override
      protected void gate(Operation operation, int flags) throws NbdException {
        if (operation == Operation.ZERO && Flags.has(flags, Flags.FAST_ZERO) && configured.refusesFastZero()) {
          throw new NbdException(Errno.ENOTSUP, "delay: a delayed zero is not fast (delay-fast-zero=false)");
        }
        await(configured.before(operation));
      }

      @Override
      public void close() throws IOException {
        try {
          await(configured.closing());
        } catch (NbdException stopping) {
          log.debug("delay: close delay cut short: {}", stopping.getMessage());
        }
        next.close();
      }
    };
  }
}
