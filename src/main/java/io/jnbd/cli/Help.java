package io.jnbd.cli;

import io.jnbd.api.Configurable;
import io.jnbd.api.Filter;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/** What the informational options print: --help, --version, --dump-config, --dump-plugin. */
final class Help {
  private Help() {}

  /** The version from the jar manifest; "unknown" when running from a classes directory. */
  static String version() {
    String version = Main.class.getPackage().getImplementationVersion();
    return version == null ? "unknown" : version;
  }

  /** jnbd's version and the nbdkit release it stands in for, then each named layer's version. */
  static void version(PrintStream out, List<? extends Configurable> layers) {
    out.println("jnbd " + version() + " (nbdkit " + Compatibility.NBDKIT_LEVEL + " compatible)");
    for (Configurable layer : layers) {
      out.println(layer.name() + " " + version());
    }
  }

  /** --long-options and --short-options: every name of every visible option, one a line, as nbdkit lists them. */
  static void optionNames(PrintStream out, boolean longNames) {
    Options.commandLine(new Options()).getCommandSpec().options().stream()
        .filter(option -> !option.hidden())
        .flatMap(option -> Arrays.stream(option.names()))
        .filter(name -> name.startsWith("--") == longNames)
        .sorted(Comparator.comparing((String name) -> name.toLowerCase(Locale.ROOT))
            .thenComparing(Comparator.reverseOrder()))
        .forEach(out::println);
  }

  static void usage(PrintStream out) {
    out.print(Options.commandLine(new Options()).getUsageMessage());
    out.println();
    out.println("Plugins:");
    for (Plugin plugin : Catalog.plugins()) {
      listEntry(out, plugin);
    }
    out.println();
    out.println("Filters:");
    for (Filter filter : Catalog.filters()) {
      listEntry(out, filter);
    }
    out.println();
    out.println("'jnbd PLUGIN --help' lists a plugin's parameters; add --filter=FILTER for a filter's.");
  }

  private static void listEntry(PrintStream out, Configurable layer) {
    out.printf("  %-14s %s%n", layer.name(), layer.description());
  }

  /** jnbd [--filter=F]... PLUGIN --help: each layer's description and parameters. */
  static void layers(PrintStream out, Plugin plugin, List<Filter> filters) {
    for (Filter filter : filters) {
      parameters(out, "filter", filter);
      out.println();
    }
    parameters(out, "plugin", plugin);
    if (plugin.magicConfigKey() != null) {
      out.println("A bare VALUE after the plugin name means " + plugin.magicConfigKey() + "=VALUE.");
    }
  }

  static void parameters(PrintStream out, String kind, Configurable layer) {
    out.println(kind + ": " + layer.name() + " - " + layer.description());
    List<Parameter> parameters = layer.parameters();
    int width = parameters.stream().mapToInt(p -> p.key().length() + p.value().length() + 1).max().orElse(0);
    for (Parameter parameter : parameters) {
      out.printf("  %-" + width + "s  %s%n", parameter.key() + "=" + parameter.value(), parameter.help());
    }
  }

  /** jnbd PLUGIN --dump-plugin: key=value lines, nbdkit's names where they apply. */
  static void dumpPlugin(PrintStream out, Plugin plugin) {
    out.println("name=" + plugin.name());
    out.println("version=" + version());
    out.println("thread_model=" + plugin.threadModel().name().toLowerCase(Locale.ROOT));
    if (plugin.magicConfigKey() != null) {
      out.println("magic_config_key=" + plugin.magicConfigKey());
    }
    plugin.dumpLines().forEach(out::println);
  }

  /**
   * jnbd --dump-config: how this jnbd was built and runs, as key=value lines. {@code version} is
   * the nbdkit compatibility level, as nbdkit's users parse it; jnbd's own is {@code jnbd_version}.
   */
  static void dumpConfig(PrintStream out) {
    out.println("name=jnbd");
    out.println("version=" + Compatibility.NBDKIT_LEVEL);
    out.println("version_major=" + Compatibility.major());
    out.println("version_minor=" + Compatibility.minor());
    out.println("jnbd_version=" + version());
    out.println("java_version=" + Runtime.version());
    out.println("java_home=" + System.getProperty("java.home"));
    out.println("exit_with_parent=yes");
    out.println("selinux=" + (SelinuxLabel.supported() ? "yes" : "no"));
    out.println("tls=yes");
    out.println("plugins=" + String.join(",", Catalog.plugins().stream().map(Configurable::name).toList()));
    out.println("filters=" + String.join(",", Catalog.filters().stream().map(Configurable::name).toList()));
  }
}
