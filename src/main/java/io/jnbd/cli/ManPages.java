package io.jnbd.cli;

import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/**
 * Writes the release's man pages from the same text as {@code --help}, so that the two cannot
 * disagree: jnbd(1) is {@code jnbd --help}, jnbd-NAME-plugin(1) is {@code jnbd NAME --help}, and
 * jnbd-NAME-filter(1) is the filter's part of {@code jnbd null --filter=NAME --help}. Each names its
 * full page (docs/, shipped in share/doc/jnbd). Run by the release build: {@code ManPages DIR}.
 */
public final class ManPages {
  private ManPages() {}

  public static void main(String[] args) throws IOException {
    Path directory = Files.createDirectories(Path.of(args[0]));
    write(directory, "jnbd", "an NBD server with nbdkit's command line, on the JVM",
        "jnbd [OPTIONS] [--filter=FILTER]... PLUGIN [[KEY=]VALUE]...", "README.md", Help::usage);
    for (Plugin plugin : Catalog.plugins()) {
      write(directory, "jnbd-" + plugin.name() + "-plugin", plugin.description(),
          "jnbd [OPTIONS] " + plugin.name() + " [KEY=VALUE]...", "docs/plugins/" + plugin.name() + ".md",
          out -> Help.layers(out, plugin, List.of()));
    }
    for (Filter filter : Catalog.filters()) {
      write(directory, "jnbd-" + filter.name() + "-filter", filter.description(),
          "jnbd [OPTIONS] --filter=" + filter.name() + " PLUGIN [KEY=VALUE]...",
          "docs/filters/" + filter.name() + ".md", out -> Help.parameters(out, "filter", filter));
    }
  }

  private static void write(Path directory, String page, String summary, String synopsis, String doc,
      Consumer<PrintStream> help) throws IOException {
    ByteArrayOutputStream text = new ByteArrayOutputStream();
    try (PrintStream out = new PrintStream(text, true, StandardCharsets.UTF_8)) {
      help.accept(out);
    }
    StringBuilder roff = new StringBuilder()
        .append(".TH ").append(page.toUpperCase(java.util.Locale.ROOT)).append(" 1 \"\" \"jnbd ")
        .append(Help.version()).append("\" \"jnbd\"\n")
        .append(".SH NAME\n").append(page.replace("-", "\\-")).append(" \\- ").append(escape(summary)).append('\n')
        .append(".SH SYNOPSIS\n.nf\n").append(escape(synopsis)).append("\n.fi\n")
        .append(".SH DESCRIPTION\n.nf\n");
    for (String line : text.toString(StandardCharsets.UTF_8).split("\n", -1)) {
      roff.append(escape(line)).append('\n');
    }
    roff.append(".fi\n.SH SEE ALSO\nThe full page, with defaults, caveats and examples: ")
        .append(escape(doc)).append(" in jnbd's documentation (share/doc/jnbd in the release).\n");
    Files.writeString(directory.resolve(page + ".1"), roff, StandardCharsets.UTF_8);
  }

  /** Escapes roff's backslash, hyphens, and a leading dot or quote that would start a request. */
  private static String escape(String line) {
    String text = line.replace("\\", "\\e").replace("-", "\\-");
    return text.startsWith(".") || text.startsWith("'") ? "\\&" + text : text;
  }
}
