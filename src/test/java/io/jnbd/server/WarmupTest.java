package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class WarmupTest {
  @Test
  void warmUpServesEveryRequestAndLeavesNoThreadsBehind() {
    assertThat(Warmup.run()).isTrue();
    assertThat(Thread.getAllStackTraces().keySet())
        .noneMatch(thread -> thread.getName().startsWith("nbd-conn-"));
  }
}
