package io.jnbd.filters.delay;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Flags;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The delay filter, nbdkit's: waits a fixed time before passing each request of a kind down, to
 * make a local plugin behave like a slow or remote one, or to widen a race window in a test.
 * Keys apply in command-line order, a later one overriding an earlier one ({@code wdelay} sets
 * write, zero and trim at once).
 */
public final class DelayFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(DelayFilter.class);

  /** What can be delayed. Flush cannot, as in nbdkit. */
  enum Event {
    READ,
    WRITE,
    ZERO,
    TRIM,
    EXTENTS,
    CACHE,
    OPEN,
    CLOSE
  }

  private final Sleeper sleeper;
  private final Map<Event, Duration> delays = new EnumMap<>(Event.class);
  private boolean delayFastZero = true;

  public DelayFilter() {
    this(Sleeper.REAL);
  }

  DelayFilter(Sleeper sleeper) {
    this.sleeper = sleeper;
    for (Event event : Event.values()) {
      delays.put(event, Duration.ZERO);
    }
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
    List<Event> events = switch (key) {
      case "rdelay", "delay-read" -> List.of(Event.READ);
      case "wdelay" -> List.of(Event.WRITE, Event.ZERO, Event.TRIM);
      case "delay-write" -> List.of(Event.WRITE);
      case "delay-zero" -> List.of(Event.ZERO);
      case "delay-trim" -> List.of(Event.TRIM);
      case "delay-extents" -> List.of(Event.EXTENTS);
      case "delay-cache" -> List.of(Event.CACHE);
      case "delay-open" -> List.of(Event.OPEN);
      case "delay-close" -> List.of(Event.CLOSE);
      case "delay-fast-zero" -> {
        delayFastZero = Values.parseBool("delay: " + key, value);
        yield List.of();
      }
      default -> null;
    };
    if (events == null) {
      return false;
    }
    if (!events.isEmpty()) {
      Duration delay = Values.parseDelay("delay: " + key, value);
      events.forEach(event -> delays.put(event, delay));
    }
    return true;
  }

  /** Waits the delay of {@code event}; a wait cut short by a stopping server fails the request. */
  private void await(Event event) throws NbdException {
    Duration delay = delays.get(event);
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
    await(Event.OPEN);
    return new FilterExport(next.open(readOnly, exportName)) {
      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        await(Event.READ);
        next.pread(buffer, offset);
      }

      @Override
      public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
        await(Event.WRITE);
        next.pwrite(buffer, offset, flags);
      }

      @Override
      public void zero(long offset, long length, int flags) throws IOException {
        if (Flags.has(flags, Flags.FAST_ZERO) && !delayFastZero && !delays.get(Event.ZERO).isZero()) {
          throw new NbdException(Errno.ENOTSUP, "delay: a delayed zero is not fast (delay-fast-zero=false)");
        }
        await(Event.ZERO);
        next.zero(offset, length, flags);
      }

      @Override
      public void trim(long offset, long length, int flags) throws IOException {
        await(Event.TRIM);
        next.trim(offset, length, flags);
      }

      @Override
      public void extents(long offset, long length, int flags, Extents extents) throws IOException {
        await(Event.EXTENTS);
        next.extents(offset, length, flags, extents);
      }

      @Override
      public void cache(long offset, long length) throws IOException {
        await(Event.CACHE);
        next.cache(offset, length);
      }

      @Override
      public void close() throws IOException {
        try {
          await(Event.CLOSE);
        } catch (NbdException stopping) {
          log.debug("delay: close delay cut short: {}", stopping.getMessage());
        }
        next.close();
      }
    };
  }
}
