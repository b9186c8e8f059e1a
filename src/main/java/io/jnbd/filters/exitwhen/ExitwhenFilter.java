package io.jnbd.filters.exitwhen;

import io.jnbd.api.Client;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.ServerHandle;
import io.jnbd.api.Values;
import io.jnbd.filters.ExportCount;
import io.jnbd.filters.Sleeper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The exitwhen filter (nbdkit's): the server exits gracefully once an outside event happens (a
 * file created or deleted, a pipe closed, a process gone, a script's say-so). Once it has, new
 * clients are refused and the server exits when the last one has gone.
 *
 * <p>Events are checked when a client connects or disconnects, and, while no client is
 * connected, every {@code exit-when-poll} seconds by a thread of this filter's own, starting at
 * once (an event that happened before the server started ends it straight away).
 */
public final class ExitwhenFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(ExitwhenFilter.class);
  /** The shortest idle poll: nbdkit's exit-when-poll=0 would spin. */
  private static final long SHORTEST_POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

  private final Sleeper sleeper;
  private final List<ExitCondition> conditions = new ArrayList<>();
  private final ExportCount clients = new ExportCount(this::clientLeft);
  private long pollSeconds = 60;
  private Watch watch = new Watch(List.of(), pollSeconds);
  private volatile ServerHandle server;
  private volatile boolean exiting;
  private final AtomicBoolean exitRequested = new AtomicBoolean();
  private Thread poller;

  public ExitwhenFilter() {
    this(Sleeper.REAL);
  }

  ExitwhenFilter(Sleeper sleeper) {
    this.sleeper = sleeper;
  }

  /** The events to watch for, in command-line order, and how often to look while idle. */
  record Watch(List<ExitCondition> conditions, long pollSeconds) {
    Watch {
      conditions = List.copyOf(conditions);
    }

    boolean watches() {
      return !conditions.isEmpty();
    }

    /** The idle poll interval, never shorter than {@link #SHORTEST_POLL_NANOS}. */
    Duration pollInterval() {
      return Duration.ofNanos(Math.max(SHORTEST_POLL_NANOS, TimeUnit.SECONDS.toNanos(pollSeconds)));
    }
  }

  @Override
  public String name() {
    return "exitwhen";
  }

  @Override
  public String description() {
    return "exit gracefully when an outside event happens";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("exit-when-file-created", "FILENAME", "Exit once this file exists (at once if it exists at start)."),
        new Parameter("exit-when-file-deleted", "FILENAME", "Exit once this file does not exist."),
        new Parameter("exit-when-pipe-closed", "FD", "Exit once every writer has closed the pipe whose read end the server inherited as this descriptor (a foreground server only)."),
        new Parameter("exit-when-process-exits", "PID", "Exit once this process has gone."),
        new Parameter("exit-when-script", "SCRIPT", "Exit once this shell command exits with status 88 (0: not yet; other statuses are logged)."),
        new Parameter("exit-when-poll", "SECS", "While no client is connected, check every SECS seconds (default 60); otherwise events are checked as clients come and go."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "exit-when-file-created" -> conditions.add(new ExitCondition.FileCreated(Path.of(value)));
      case "exit-when-file-deleted" -> conditions.add(new ExitCondition.FileDeleted(Path.of(value)));
      case "exit-when-pipe-closed" -> conditions.add(new ExitCondition.PipeClosed(Values.parseInt("exitwhen: " + key, value, 0, Integer.MAX_VALUE)));
      case "exit-when-process-exits" -> conditions.add(new ExitCondition.ProcessExits(processId(key, value)));
      case "exit-when-script" -> conditions.add(new ExitCondition.ScriptSays(value));
      case "exit-when-poll" -> pollSeconds = Values.parseInt("exitwhen: " + key, value, 0, Integer.MAX_VALUE);
      default -> {
        return false;
      }
    }
    return true;
  }

  @Override
  public void configComplete() {
    watch = new Watch(conditions, pollSeconds);
  }

  private static long processId(String key, String value) {
    try {
      long pid = Long.parseLong(value.trim());
      if (pid > 0) {
        return pid;
      }
    } catch (NumberFormatException e) {
      // Reported below.
    }
    throw new ConfigException("exitwhen: " + key + ": not a process ID: '" + value + "'");
  }

  @Override
  public void attach(ServerHandle server) {
    this.server = server;
    if (watch.watches()) {
      poller = Thread.ofPlatform().daemon().name("exitwhen-poll").start(this::pollWhileIdle);
    }
  }

  private void pollWhileIdle() {
    Duration interval = watch.pollInterval();
    try {
      while (true) {
        if (clients.open() == 0 && (exiting || happened())) {
          exit();
          return;
        }
        sleeper.sleep(interval);
      }
    } catch (InterruptedException e) {
      // Unloading.
    }
  }

  /** True once any event has happened; then stays true. */
  private boolean happened() {
    if (!exiting) {
      for (ExitCondition condition : watch.conditions()) {
        if (condition.happened()) {
          log.info("exitwhen: {} happened: no new clients, exiting once the last has gone", condition);
          exiting = true;
          break;
        }
      }
    }
    return exiting;
  }

  @Override
  public void preconnect(Layer next, Client client, boolean readOnly) throws IOException {
    if (watch.watches() && happened()) {
      throw new NbdException(Errno.ESHUTDOWN, "exitwhen: shutdown in progress, ignoring new connection");
    }
    next.preconnect(client, readOnly);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return clients.track(next.open(readOnly, exportName));
  }

  private void clientLeft(int stillConnected) {
    if (watch.watches() && happened() && stillConnected == 0) {
      exit();
    }
  }

  /** Asks the server to stop, once, whether the poller or the last client's departure gets here first. */
  private void exit() {
    if (exitRequested.compareAndSet(false, true)) {
      server.requestShutdown();
    }
  }

  @Override
  public void unload() {
    if (poller != null) {
      poller.interrupt();
    }
    // Every condition made, even when a later key failed and configComplete() never ran.
    conditions.forEach(ExitCondition::close);
  }
}
