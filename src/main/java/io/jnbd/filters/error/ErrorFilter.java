package io.jnbd.filters.error;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.filters.GatedExport;
import io.jnbd.filters.GatedExport.Operation;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.DoubleSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The error filter, nbdkit's: fails a random share of requests with a chosen error before they
 * reach the layer below, to test how clients (and filters further out, such as retry) cope. Each
 * operation has its own error, rate and trigger file; the keys without an operation set all of
 * them, and a later key overrides an earlier one, as in nbdkit. A READ whose bytes the layer
 * below hands over without a copy is failed once they are handed over, and they are given back
 * ({@link io.jnbd.filters.GatedExport#readData}).
 */
public final class ErrorFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(ErrorFilter.class);

  /** The errors a client can be sent, by the names nbdkit takes. */
  private static final List<Errno> ERRORS =
      List.of(Errno.EPERM, Errno.EIO, Errno.ENOMEM, Errno.EINVAL, Errno.ENOSPC, Errno.ESHUTDOWN);

  /**
   * When and how one operation fails, fixed once configured.
   *
   * @param rate the share of requests that fail, 0 to 1
   * @param file fail only while this file exists; null: always
   */
  record Injection(Errno error, double rate, Path file) {}

  private final DoubleSupplier random;
  private final Map<Operation, Errno> errors = new EnumMap<>(Operation.class);
  private final Map<Operation, Double> rates = new EnumMap<>(Operation.class);
  private final Map<Operation, Path> files = new EnumMap<>(Operation.class);
  private Map<Operation, Injection> injections;

  public ErrorFilter() {
    this(() -> ThreadLocalRandom.current().nextDouble());
  }

  /** @param random uniform numbers in [0, 1), one per request that might fail */
  ErrorFilter(DoubleSupplier random) {
    this.random = random;
    for (Operation operation : Operation.values()) {
      errors.put(operation, Errno.EIO);
      rates.put(operation, 0.0);
    }
    injections = injectionsConfigured();
  }

  @Override
  public String name() {
    return "error";
  }

  @Override
  public String description() {
    return "inject errors into a share of requests, for testing clients";
  }

  @Override
  public List<Parameter> parameters() {
    List<Parameter> parameters = new ArrayList<>(List.of(
        new Parameter("error", "EPERM|EIO|ENOMEM|EINVAL|ENOSPC|ESHUTDOWN", "The error injected requests fail with (default EIO)."),
        new Parameter("error-rate", "N%|0..1", "The share of requests that fail, as a percentage or a probability (default 0: none)."),
        new Parameter("error-file", "PATH", "Inject errors only while this file exists (default: always).")));
    for (Operation operation : Operation.values()) {
      String prefix = "error-" + operation.label();
      parameters.add(new Parameter(prefix, "ERROR", "As error, for " + operation.label() + " requests only."));
      parameters.add(new Parameter(prefix + "-rate", "N%|0..1", "As error-rate, for " + operation.label() + " requests only."));
      parameters.add(new Parameter(prefix + "-file", "PATH", "As error-file, for " + operation.label() + " requests only."));
    }
    return parameters;
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.startsWith("error")) {
      return false;
    }
    String rest = key.substring("error".length());
    String setting = "";
    for (String suffix : List.of("-rate", "-file")) {
      if (rest.endsWith(suffix)) {
        setting = suffix;
        rest = rest.substring(0, rest.length() - suffix.length());
        break;
      }
    }
    List<Operation> targets;
    if (rest.isEmpty()) {
      targets = List.of(Operation.values());
    } else {
      Operation one = rest.startsWith("-") ? operation(rest.substring(1)) : null;
      if (one == null) {
        return false;
      }
      targets = List.of(one);
    }
    String what = "error: " + key;
    switch (setting) {
      case "-rate" -> {
        double rate = parseRate(what, value);
        targets.forEach(operation -> rates.put(operation, rate));
      }
      case "-file" -> {
        Path file = Path.of(value);
        targets.forEach(operation -> files.put(operation, file));
      }
      default -> {
        Errno error = parseError(what, value);
        targets.forEach(operation -> errors.put(operation, error));
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    injections = injectionsConfigured();
  }

  private Map<Operation, Injection> injectionsConfigured() {
    Map<Operation, Injection> configured = new EnumMap<>(Operation.class);
    for (Operation operation : Operation.values()) {
      configured.put(operation, new Injection(errors.get(operation), rates.get(operation), files.get(operation)));
    }
    return Collections.unmodifiableMap(configured);
  }

  private static Operation operation(String label) {
    for (Operation operation : Operation.values()) {
      if (operation.label().equals(label)) {
        return operation;
      }
    }
    return null;
  }

  static Errno parseError(String what, String value) {
    for (Errno error : ERRORS) {
      if (error.name().equals(value)) {
        return error;
      }
    }
    throw new ConfigException(what + ": unknown error name '" + value + "' (EPERM, EIO, ENOMEM, EINVAL, ENOSPC or ESHUTDOWN)");
  }

  /** A rate as nbdkit takes it: {@code 10%} or {@code 0.1}, between 0 and 1. */
  static double parseRate(String what, String value) {
    String text = value.trim();
    boolean percent = text.endsWith("%");
    double rate;
    try {
      rate = Double.parseDouble(percent ? text.substring(0, text.length() - 1) : text);
    } catch (NumberFormatException e) {
      throw new ConfigException(what + ": not a rate (N% or 0..1): '" + value + "'");
    }
    if (percent) {
      rate /= 100;
    }
    if (!(rate >= 0 && rate <= 1)) {
      throw new ConfigException(what + ": rate out of range (0% to 100%, or 0 to 1): '" + value + "'");
    }
    return rate;
  }

  /** Throws the configured error if this request is one to fail. */
  private void maybeFail(Operation operation) throws NbdException {
    Injection injection = injections.get(operation);
    double rate = injection.rate();
    if (rate <= 0 || rate < 1 && random.getAsDouble() >= rate) {
      return;
    }
    if (injection.file() != null && !Files.exists(injection.file())) {
      return;
    }
    log.info("error: injecting {} error into {}", injection.error(), operation.label());
    throw new NbdException(injection.error(), "injected " + injection.error() + " error into " + operation.label());
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new GatedExport(next.open(readOnly, exportName)) {
      @Override
      protected void gate(Operation operation, int flags) throws NbdException {
        maybeFail(operation);
      }
    };
  }
}
