package io.jnbd.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class ParseDelayTest {
  @Test
  void takesSecondsFractionsAndUnitsAsNbdkitDoes() {
    assertThat(Values.parseDelay("d", "2")).isEqualTo(Duration.ofSeconds(2));
    assertThat(Values.parseDelay("d", "0")).isEqualTo(Duration.ZERO);
    assertThat(Values.parseDelay("d", "1.5")).isEqualTo(Duration.ofMillis(1500));
    assertThat(Values.parseDelay("d", "1.5s")).isEqualTo(Duration.ofMillis(1500));
    assertThat(Values.parseDelay("d", "100ms")).isEqualTo(Duration.ofMillis(100));
    assertThat(Values.parseDelay("d", "0.5ms")).isEqualTo(Duration.ofNanos(500_000));
    assertThat(Values.parseDelay("d", "20us")).isEqualTo(Duration.ofNanos(20_000));
    assertThat(Values.parseDelay("d", "20\u03bcs")).isEqualTo(Duration.ofNanos(20_000));
    assertThat(Values.parseDelay("d", "7ns")).isEqualTo(Duration.ofNanos(7));
  }

  @Test
  void refusesWhatIsNotADelayNamingTheKey() {
    for (String bad : new String[] {"", "-1", "soon", "1.2.3", "5m", "1e3", "ms"}) {
      assertThatThrownBy(() -> Values.parseDelay("rdelay", bad))
          .as(bad).isInstanceOf(ConfigException.class).hasMessageStartingWith("rdelay: ");
    }
  }
}
