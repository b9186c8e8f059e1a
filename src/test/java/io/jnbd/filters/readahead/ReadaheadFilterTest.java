package io.jnbd.filters.readahead;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The readahead filter's configuration: keys parsed in config, checked together in the settings record. */
class ReadaheadFilterTest {
  private static ReadaheadFilter configured(String... keyValues) {
    ReadaheadFilter filter = new ReadaheadFilter();
    for (String keyValue : keyValues) {
      String[] parts = keyValue.split("=", 2);
      assertThat(filter.config(parts[0], parts[1])).as(parts[0]).isTrue();
    }
    filter.configComplete();
    return filter;
  }

  @Test
  void impossibleSettingsAreConfigErrorsNamingTheKey() {
    Map<String, String> expected = Map.of(
        "readahead-window=0", "readahead: readahead-window: must be greater than 0",
        "readahead-chunk=64M", "readahead: readahead-chunk: at most 32M",
        "readahead-window=64M", "readahead: readahead-window must not exceed readahead-max-window",
        "readahead-cache-size=0", "readahead: readahead-cache-size: must be greater than 0");
    expected.forEach((keyValue, message) ->
        assertThatThrownBy(() -> configured(keyValue)).as(keyValue).isInstanceOf(ConfigException.class).hasMessage(message));
    assertThatThrownBy(() -> configured("readahead-streams=0")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("readahead-streams");
  }

  @Test
  void aLargerWindowFitsUnderARaisedCeiling() {
    configured("readahead-window=64M", "readahead-max-window=128M", "readahead-chunk=32M");
    assertThat(new ReadaheadFilter().config("readahead-other", "1")).isFalse();
  }
}
