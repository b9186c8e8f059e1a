package io.jnbd.cli;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Configurable;
import io.jnbd.api.Filter;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import io.jnbd.server.Stack;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The jnbd command: {@code jnbd [OPTIONS] [--filter=FILTER]... PLUGIN [[KEY=]VALUE]...}. Every
 * failure to start is one line on stderr ({@code jnbd: message}) and exit status 1.
 *
 * <p>No logger here on purpose: -v must set the log level before the first logger exists.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  /** Runs the command and returns its exit status; serving modes return when the server stops. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    // The probes that programs run before every use (virt-v2v: nbdkit --version, --dump-config)
    // are answered before the command-line parser is built: picocli reads its model from
    // annotations by reflection, which even with its classes in the AOT cache doubles a
    // --version's CPU (0.08 -> 0.17 s).
    if (args.length == 1 && args[0].equals("--version")) {
      Help.version(out, List.of());
      return 0;
    }
    if (args.length == 1 && args[0].equals("--dump-config")) {
      Help.dumpConfig(out);
      return 0;
    }
    String serverName = null;
    try {
      Options options = Options.parse(args);
      serverName = options.name;
      options.passedSockets = SocketActivation.passedSockets(System.getenv(), ProcessHandle.current().pid());
      configureLogging(options);
      err = logDestination(options, err);
      return run(args, options, out, err);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      fail(err, serverName, "interrupted");
    } catch (IOException | RuntimeException e) {
      boolean expected = e instanceof IOException || e instanceof ConfigException;
      // Anything else is a layer failing unexpectedly: still one line, with the type for a bug report.
      fail(err, serverName, expected && e.getMessage() != null ? e.getMessage() : e.toString());
    }
    return 1;
  }

  /** One line; --name, when given, tells which of several servers failed. */
  private static void fail(PrintStream err, String serverName, String message) {
    String prefix = serverName == null ? "jnbd: " : "jnbd: " + serverName + ": ";
    err.println(prefix + message.strip().replaceAll("\\s*\\R\\s*", "; "));
  }

  private static int run(String[] args, Options options, PrintStream out, PrintStream err)
      throws IOException, InterruptedException {
    if (options.longOptions || options.shortOptions) {
      Help.optionNames(out, options.longOptions);
      return 0;
    }
    if (options.dumpConfig) {
      Help.dumpConfig(out);
      return 0;
    }
    // Every named filter and plugin must exist before any probe answers: programs ask
    // "jnbd PLUGIN --version" to learn whether PLUGIN is there, and go by the exit status.
    List<Filter> filters = new ArrayList<>();
    for (String name : options.filters) {
      filters.add(Catalog.filter(name));
    }
    if (options.plugin() == null) {
      if (options.version) {
        Help.version(out, filters);
        return 0;
      }
      if (options.help) {
        Help.usage(out);
        return 0;
      }
      throw new ConfigException("no plugin given (try 'jnbd --help')");
    }
    Plugin plugin = Catalog.plugin(options.plugin());
    if (options.version) {
      List<Configurable> layers = new ArrayList<>(filters);
      layers.add(plugin);
      Help.version(out, layers);
      return 0;
    }
    if (options.help) {
      Help.layers(out, plugin, filters);
      return 0;
    }
    if (options.dumpPlugin) {
      Help.dumpPlugin(out, plugin);
      return 0;
    }
    if (options.passedSockets > 0) {
      SocketActivation.checkOptions(options);
    }
    if (options.detaches()) {
      return Background.launch(args, options, secretKeys(plugin, filters), err);
    }
    Stack stack = configure(plugin, filters, options);
    if (options.single) {
      // Stdout carries the protocol now: nothing else may write to it.
      System.setOut(System.err);
    }
    try (Session session = Session.start(stack, options)) {
      if (options.run != null) {
        return Captive.run(options.run, session.environment(), err);
      }
      if (options.single) {
        session.server().serveOne(new StdioChannel());
        return 0;
      }
      if (options.backgroundChild) {
        Background.signalReady(options);
      }
      session.stopOnSignals();
      session.awaitTermination();
      return 0;
    }
  }

  /** Hands every key=value to the stack in command-line order, then completes configuration. */
  static Stack configure(Plugin plugin, List<Filter> filters, Options options) {
    Stack stack = new Stack(filters, plugin, options.parsedDebugFlags());
    for (Options.Param param : options.params()) {
      String key = param.key();
      if (key == null) {
        key = plugin.magicConfigKey();
        if (key == null) {
          throw new ConfigException(plugin.name() + ": '" + param.value()
              + "' is not key=value, and this plugin takes no bare value");
        }
      }
      stack.config(key, param.value());
    }
    stack.configComplete();
    return stack;
  }

  private static Set<String> secretKeys(Plugin plugin, List<Filter> filters) {
    Set<String> keys = new HashSet<>();
    Stream.<Configurable>concat(Stream.of(plugin), filters.stream())
        .flatMap(layer -> layer.parameters().stream())
        .filter(Parameter::secret)
        .forEach(parameter -> keys.add(parameter.key()));
    return keys;
  }

  /**
   * Where messages go: with --log=syslog, System.err (which slf4j-simple writes to) and the
   * returned stream, for this class's own one-line failures, send to syslog. When syslog cannot
   * be reached, messages stay on {@code err}, after one warning there.
   */
  private static PrintStream logDestination(Options options, PrintStream err) {
    if (!"syslog".equals(options.log)) {
      return err;
    }
    try {
      PrintStream syslog = SyslogOutput.open(SyslogOutput.socketPath()).printStream();
      System.setErr(syslog);
      return syslog;
    } catch (IOException e) {
      err.println("jnbd: warning: --log=syslog: cannot reach syslog at " + e.getMessage() + "; logging to stderr");
      return err;
    }
  }

  /** Sets the slf4j-simple level from -v and --log=null; otherwise its default (info) holds. */
  private static void configureLogging(Options options) {
    String property = "org.slf4j.simpleLogger.defaultLogLevel";
    if ("null".equals(options.log)) {
      System.setProperty(property, "off");
    } else if (options.verbose) {
      System.setProperty(property, "debug");
    }
  }
}
