package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Configurable;
import io.jnbd.api.Filter;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every built-in plugin and filter the catalog finds is usable and documented: found by its
 * name, described, claims each key its help lists, refuses or passes on others, tells the truth
 * in {@code --help}, and has a docs page and a README row that cover every parameter. Driven by
 * {@link Catalog}, so a new layer is checked as soon as it is registered.
 */
class RegistrationTest {
  static Stream<Plugin> plugins() {
    return Catalog.plugins().stream().filter(RegistrationTest::builtIn);
  }

  static Stream<Filter> filters() {
    return Catalog.filters().stream().filter(RegistrationTest::builtIn);
  }

  /** Built in means shipped: loaded from where Catalog is, not a test double (testdisk, shrink). */
  private static boolean builtIn(Configurable layer) {
    return codeSource(layer.getClass()).equals(codeSource(Catalog.class));
  }

  private static String codeSource(Class<?> type) {
    return type.getProtectionDomain().getCodeSource().getLocation().toString();
  }

  @Test
  void theCatalogFindsTheBuiltInLayersAndNoNameIsTaken() {
    List<String> plugins = plugins().map(Plugin::name).toList();
    List<String> filters = filters().map(Filter::name).toList();
    assertThat(plugins).contains("memory", "file", "null", "pattern", "data", "http", "curl").doesNotHaveDuplicates();
    assertThat(filters).contains("cache", "readahead", "cow", "retry", "log").doesNotHaveDuplicates();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("plugins")
  void pluginIsRegisteredConfigurableAndDocumented(Plugin plugin) throws IOException {
    String name = plugin.name();
    assertThat(Catalog.plugin(name)).isExactlyInstanceOf(plugin.getClass());
    checkParameters(plugin);
    if (plugin.magicConfigKey() != null) {
      assertThat(plugin.parameters()).extracting(Parameter::key).as("magic key listed").contains(plugin.magicConfigKey());
    }
    for (Parameter parameter : plugin.parameters()) {
      // A bad value may be refused, but never as an unknown key: help and parser must agree.
      claims(() -> Catalog.plugin(name).config(parameter.key(), ""), name, parameter.key());
    }
    assertThatThrownBy(() -> Catalog.plugin(name).config("no-such-key", "1"))
        .isInstanceOf(ConfigException.class).hasMessage(name + ": unknown parameter 'no-such-key'");
    checkHelp(name, plugin, MainTest.jnbd(name, "--help"), "plugin: ");
    checkDocs(plugin, "plugins", plugins().toList());
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("filters")
  void filterIsRegisteredConfigurableAndDocumented(Filter filter) throws IOException {
    String name = filter.name();
    assertThat(Catalog.filter(name)).isExactlyInstanceOf(filter.getClass());
    checkParameters(filter);
    for (Parameter parameter : filter.parameters()) {
      // An empty value has no side effects (a descriptor, a script) and may well be refused.
      claims(() -> Catalog.filter(name).config(parameter.key(), ""), name, parameter.key());
    }
    assertThat(Catalog.filter(name).config("no-such-key", "1")).as("passes other keys on").isFalse();
    checkHelp(name, filter, MainTest.jnbd("--filter=" + name, "null", "--help"), "filter: ");
    checkDocs(filter, "filters", filters().toList());
  }

  private static void checkParameters(Configurable layer) {
    assertThat(layer.description()).as("description").isNotBlank().doesNotContain("\n");
    List<Parameter> parameters = layer.parameters();
    assertThat(parameters).extracting(Parameter::key).as("keys").doesNotHaveDuplicates();
    for (Parameter parameter : parameters) {
      assertThat(parameter.key()).matches("[a-z][a-z0-9-]*");
      assertThat(parameter.value()).as(parameter.key()).isNotBlank();
      assertThat(parameter.help()).as(parameter.key()).isNotBlank();
    }
  }

  private interface Config {
    boolean apply();
  }

  private static void claims(Config config, String name, String key) {
    try {
      assertThat(config.apply()).as(key + " claimed").isTrue();
    } catch (ConfigException e) {
      assertThat(e.getMessage()).as(key).startsWith(name + ": ").doesNotContain("unknown parameter");
    }
  }

  private static void checkHelp(String name, Configurable layer, MainTest.Result help, String heading) {
    assertThat(help.status()).as(help.err()).isZero();
    assertThat(help.out()).contains(heading + name + " - " + layer.description());
    for (Parameter parameter : layer.parameters()) {
      assertThat(help.out()).containsPattern("(?m)^  " + Pattern.quote(parameter.key() + "=" + parameter.value())
          + " +" + Pattern.quote(parameter.help()) + "$");
    }
    MainTest.Result listing = MainTest.jnbd("--help");
    assertThat(listing.out()).containsPattern("(?m)^  " + Pattern.quote(name) + " +"
        + Pattern.quote(layer.description()) + "$");
  }

  /**
   * The keys in the first cell of the page's table rows ({@code | `key=VALUE`, `other=VALUE` |});
   * a family of keys is written with OP for the operation ({@code `error-OP-rate=RATE`}).
   */
  private static List<Pattern> documentedKeys(String page) {
    Pattern cellKey = Pattern.compile("`([a-zA-Z0-9-]+)[=`]");
    return page.lines().filter(line -> line.startsWith("| `"))
        .map(line -> line.substring(1, line.indexOf('|', 1)))
        .flatMap(cell -> cellKey.matcher(cell).results().map(match -> match.group(1)))
        .map(key -> Pattern.compile(Pattern.quote(key).replace("OP", "\\E[a-z]+\\Q")))
        .toList();
  }

  /**
   * The layer's page is docs/KIND/NAME.md, or for an alias (a subclass of another registered
   * layer) its original's page, which must then name the alias. The page's parameter table has a
   * row for every key, and the README's table a row linking to the page.
   */
  private static <T extends Configurable> void checkDocs(T layer, String kind, List<T> all) throws IOException {
    String name = layer.name();
    Optional<T> original = all.stream().filter(other -> other.getClass() == layer.getClass().getSuperclass()).findFirst();
    String pageName = original.map(Configurable::name).orElse(name);
    Path page = Path.of("docs", kind, pageName + ".md");
    assertThat(page).as("docs page").exists();
    String text = Files.readString(page);
    assertThat(text.lines().findFirst().orElse("")).as("page title").contains(pageName).contains(name);
    List<Pattern> documented = documentedKeys(text);
    for (Parameter parameter : layer.parameters()) {
      assertThat(documented).as(page + " has a table row for " + parameter.key())
          .anyMatch(key -> key.matcher(parameter.key()).matches());
    }
    String row = Files.readString(Path.of("README.md")).lines()
        .filter(line -> line.startsWith("| `" + pageName + "` "))
        .findFirst().orElse("");
    assertThat(row).as("README row").contains("`" + name + "`").contains("(docs/" + kind + "/" + pageName + ".md)");
  }
}
