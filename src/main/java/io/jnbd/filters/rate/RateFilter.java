package io.jnbd.filters.rate;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.ReadData;
import io.jnbd.api.Values;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * The rate filter (nbdkit's): limits the bandwidth of reads and writes, server-wide and per
 * connection, with token buckets that let a client burst after a quiet spell. Reads and writes
 * have separate buckets; trims, zeroes and the rest cost nothing, as they send next to nothing on
 * the wire. Rates may follow files that change while the server runs.
 *
 * <p>The server-wide buckets live here; each connection's in its export.
 */
public final class RateFilter implements Filter {
  static final double DEFAULT_BURSTINESS = 2.0;

  private final LongSupplier clock;
  private final Sleeper sleeper;
  /** Null: no limit. */
  private Long rate;
  private Long connectionRate;
  private Path rateFile;
  private Path connectionRateFile;
  private double burstiness = DEFAULT_BURSTINESS;
  private Settings settings;
  private RateSource connectionSource;
  Limit reads;
  Limit writes;

  public RateFilter() {
    this(System::nanoTime, Sleeper.REAL);
  }

  RateFilter(LongSupplier clock, Sleeper sleeper) {
    this.clock = clock;
    this.sleeper = sleeper;
  }

  /**
   * The configured limits, checked when built.
   *
   * @param rate bits per second over all connections, null for no limit (0 is refused: it would stop all I/O)
   * @param rateFile where rate may change while running, or null
   * @param burstiness bucket capacity in seconds at the rate
   */
  record Settings(Long rate, Long connectionRate, Path rateFile, Path connectionRateFile, double burstiness) {
    Settings {
      notZero("rate", rate);
      notZero("connection-rate", connectionRate);
    }

    private static void notZero(String key, Long rate) {
      if (rate != null && rate == 0) {
        throw new ConfigException("rate: " + key + " cannot be 0");
      }
    }

    RateSource serverSource(LongSupplier clock) {
      return new RateSource("rate-file", rate != null ? rate : 0, rateFile, clock);
    }

    RateSource connectionSource(LongSupplier clock) {
      return new RateSource("connection-rate-file", connectionRate != null ? connectionRate : 0, connectionRateFile, clock);
    }
  }

  @Override
  public String name() {
    return "rate";
  }

  @Override
  public String description() {
    return "limit read and write bandwidth, server-wide and per connection";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("rate", "BITSPERSEC", "Limit reads, and separately writes, of all connections together to this many bits per second (k, M, G: powers of 1024; default: no limit)."),
        new Parameter("connection-rate", "BITSPERSEC", "Limit reads, and separately writes, of each connection (default: no limit)."),
        new Parameter("rate-file", "PATH", "Take the server-wide rate from this file while running: re-read at most once a second; if absent, rate= applies; if deleted, the last rate read stays."),
        new Parameter("connection-rate-file", "PATH", "Take the per-connection rate from this file while running, as rate-file."),
        new Parameter("burstiness", "SECS", "Bucket capacity, in seconds at the rate: how long a client may go at full speed after a quiet spell (default 2.0)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "rate" -> rate = Values.parseSize("rate: " + key, value);
      case "connection-rate" -> connectionRate = Values.parseSize("rate: " + key, value);
      case "rate-file" -> rateFile = Path.of(value);
      case "connection-rate-file" -> connectionRateFile = Path.of(value);
      case "burstiness" -> burstiness = seconds(key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  private static double seconds(String key, String value) {
    try {
      double seconds = Double.parseDouble(value.trim());
      if (seconds >= 0 && Double.isFinite(seconds)) {
        return seconds;
      }
    } catch (NumberFormatException e) {
      // Reported below with the other bad values.
    }
    throw new ConfigException("rate: " + key + " must be a number of seconds, 0 or more: '" + value + "'");
  }

  @Override
  public void configComplete() {
    settings = new Settings(rate, connectionRate, rateFile, connectionRateFile, burstiness);
    RateSource serverSource = settings.serverSource(clock);
    reads = new Limit(serverSource, settings.burstiness(), clock, sleeper);
    writes = new Limit(serverSource, settings.burstiness(), clock, sleeper);
    connectionSource = settings.connectionSource(clock);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new RateExport(next.open(readOnly, exportName));
  }

  private final class RateExport extends FilterExport {
    private final Limit connectionReads = new Limit(connectionSource, settings.burstiness(), clock, sleeper);
    private final Limit connectionWrites = new Limit(connectionSource, settings.burstiness(), clock, sleeper);

    RateExport(Export next) {
      super(next);
    }

    @Override
    public void pread(ByteBuffer buffer, long offset) throws IOException {
      reads.spend(buffer.remaining());
      connectionReads.spend(buffer.remaining());
      next.pread(buffer, offset);
    }

    /** The bytes are counted and paced once handed over, before they go out. */
    @Override
    public ReadData readData(long offset, int length) throws IOException {
      return readDataThen(offset, length, () -> {
        reads.spend(length);
        connectionReads.spend(length);
      });
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      writes.spend(buffer.remaining());
      connectionWrites.spend(buffer.remaining());
      next.pwrite(buffer, offset, flags);
    }
  }
}
