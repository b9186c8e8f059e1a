package io.jnbd.filters.log;

import io.jnbd.api.Client;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.ExportDescription;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.ServerHandle;
import io.jnbd.api.ThreadModel;
import io.jnbd.api.Values;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

/**
 * The log filter, nbdkit's: writes every request that passes, with its parameters and result,
 * and each connection's open and close, to a file in nbdkit's log format, so logs of jnbd and
 * nbdkit can be compared line by line (timestamps aside). Outermost it shows what clients ask;
 * further in, what the filters above made of it.
 */
public final class LogFilter implements Filter {
  private final Clock clock;
  private Path path;
  private boolean append;
  private LogFile file;
  private ThreadModel model = ThreadModel.PARALLEL;
  private final AtomicLong connections = new AtomicLong();
  private final AtomicLong preconnects = new AtomicLong();
  private final AtomicLong listings = new AtomicLong();

  public LogFilter() {
    this(Clock.systemDefaultZone());
  }

  LogFilter(Clock clock) {
    this.clock = clock;
  }

  @Override
  public String name() {
    return "log";
  }

  @Override
  public String description() {
    return "log every request and connection to a file, in nbdkit's log format";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("logfile", "PATH", "The file to log to (default: none, and the filter does nothing)."),
        new Parameter("logappend", "true|false", "Append to logfile instead of replacing it (default false)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "logfile" -> path = Path.of(value);
      case "logappend" -> append = Values.parseBool("log: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    if (path == null) {
      return;
    }
    try {
      file = new LogFile(path, append, clock);
    } catch (IOException e) {
      throw new ConfigException("log: logfile: cannot open " + path + ": " + e.getMessage());
    }
  }

  @Override
  public void threadModelBelow(ThreadModel below) {
    model = below;
  }

  @Override
  public void attach(ServerHandle server) {
    if (file != null) {
      file.write("Ready thread_model=" + model.ordinal());
    }
  }

  @Override
  public void preconnect(Layer next, Client client, boolean readOnly) throws IOException {
    if (file == null) {
      next.preconnect(client, readOnly);
      return;
    }
    String event = "Preconnect id=" + preconnects.incrementAndGet();
    file.write(event + " readonly=" + bit(readOnly) + " ...");
    try {
      next.preconnect(client, readOnly);
    } catch (IOException | RuntimeException e) {
      file.write("..." + event + " " + failure(e));
      throw e;
    }
    file.write("..." + event + " return=0");
  }

  @Override
  public List<ExportDescription> listExports(Layer next, boolean readOnly) throws IOException {
    if (file == null) {
      return next.listExports(readOnly);
    }
    String event = "ListExports id=" + listings.incrementAndGet();
    file.write(event + " readonly=" + bit(readOnly) + " tls=0 ...");
    List<ExportDescription> exports;
    try {
      exports = next.listExports(readOnly);
    } catch (IOException | RuntimeException e) {
      file.write("..." + event + " " + failure(e));
      throw e;
    }
    String names = exports.stream().map(export -> LogFile.quote(export.name())).collect(Collectors.joining(" "));
    file.write("..." + event + " exports=(" + names + ") return=0");
    return exports;
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    if (file == null) {
      return next.open(readOnly, exportName);
    }
    Export below = next.open(readOnly, exportName);
    try {
      return new LoggedExport(below, file, connections.incrementAndGet(), exportName);
    } catch (IOException | RuntimeException e) {
      below.close();
      throw e;
    }
  }

  @Override
  public void unload() {
    if (file != null) {
      try {
        file.close();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  static String bit(boolean value) {
    return value ? "1" : "0";
  }

  /** How nbdkit's log ends the line of a call that failed. */
  static String failure(Throwable e) {
    return "return=-1 error=" + NbdException.errnoOf(e).name();
  }
}
