package io.jnbd.plugins;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.server.Catalog;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RegistrationTest {
  @ParameterizedTest
  @ValueSource(strings = {"memory", "file", "null", "pattern", "data", "nbd"})
  void registeredWithHelpAndEveryListedKeyIsAccepted(String name) {
    Plugin plugin = Catalog.plugin(name);
    assertThat(plugin.name()).isEqualTo(name);
    assertThat(plugin.description()).isNotBlank();
    List<Parameter> parameters = plugin.parameters();
    assertThat(parameters).isNotEmpty();
    assertThat(parameters).extracting(Parameter::key).contains(plugin.magicConfigKey());
    for (Parameter parameter : parameters) {
      assertThat(parameter.help()).isNotBlank();
      try {
        Catalog.plugin(name).config(parameter.key(), "1");
      } catch (ConfigException e) {
        // A bad value is fine here; an unknown key would mean help and parser disagree.
        assertThat(e.getMessage()).startsWith(name + ": ").doesNotContain("unknown parameter");
      }
    }
    try {
      Catalog.plugin(name).config("no-such-key", "1");
      throw new AssertionError("unknown key accepted by " + name);
    } catch (ConfigException e) {
      assertThat(e.getMessage()).isEqualTo(name + ": unknown parameter 'no-such-key'");
    }
  }
}
