package io.jnbd.filters;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Filter;
import io.jnbd.api.Parameter;
import io.jnbd.server.Catalog;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The retry, retry-request, error, delay and log filters are found by name and claim every key their help lists. */
class FaultFiltersRegistrationTest {
  @ParameterizedTest
  @ValueSource(strings = {"retry", "retry-request", "error", "delay", "log"})
  void registeredWithHelpAndEveryListedKeyIsClaimed(String name) {
    Filter filter = Catalog.filter(name);
    assertThat(filter.name()).isEqualTo(name);
    assertThat(filter.description()).isNotBlank();
    assertThat(filter.parameters()).isNotEmpty();
    for (Parameter parameter : filter.parameters()) {
      assertThat(parameter.help()).as(parameter.key()).isNotBlank();
      try {
        assertThat(Catalog.filter(name).config(parameter.key(), "1")).as(parameter.key()).isTrue();
      } catch (ConfigException e) {
        // A bad value is fine here; the message names the filter and the key.
        assertThat(e.getMessage()).startsWith(name + ": " + parameter.key() + ": ");
      }
    }
    assertThat(filter.config("no-such-key", "1")).isFalse();
  }
}
