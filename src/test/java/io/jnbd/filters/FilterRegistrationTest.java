package io.jnbd.filters;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Filter;
import io.jnbd.api.Parameter;
import io.jnbd.server.Catalog;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Every built-in filter is found by its name, claims the keys its help lists, and is documented. */
class FilterRegistrationTest {
  static Stream<String> filters() {
    // Test doubles registered by the tests themselves are not built in.
    return Catalog.filters().stream().filter(f -> f.getClass().getPackageName().startsWith("io.jnbd.filters")).map(Filter::name);
  }

  @ParameterizedTest
  @MethodSource("filters")
  void registeredWithHelpDocumentedAndClaimsItsKeys(String name) throws Exception {
    Filter filter = Catalog.filter(name);
    assertThat(filter.description()).isNotBlank();
    for (Parameter parameter : filter.parameters()) {
      assertThat(parameter.help()).isNotBlank();
      try {
        // An empty value has no side effects (a descriptor, a script) and may well be refused.
        assertThat(Catalog.filter(name).config(parameter.key(), "")).as(parameter.key()).isTrue();
      } catch (ConfigException e) {
        assertThat(e.getMessage()).as("names the filter").startsWith(name + ": ");
      }
    }
    assertThat(Catalog.filter(name).config("no-such-key", "1")).as("passes other keys on").isFalse();
    assertThat(Path.of("docs/filters/" + name + ".md")).exists();
    assertThat(Files.readString(Path.of("README.md"))).contains("| `" + name + "` |");
  }
}
