package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class SyslogOutputTest {
  @Test
  void thePriorityComesFromTheSlf4jLevelAndStackTracesKeepTheirLines() {
    int info = SyslogOutput.LOG_INFO;
    assertThat(SyslogOutput.priority("[main] ERROR io.jnbd.X - broke", info)).isEqualTo(SyslogOutput.LOG_ERR);
    assertThat(SyslogOutput.priority("[nbd-conn-#1 127.0.0.1:5] WARN io.jnbd.X - hmm", info))
        .isEqualTo(SyslogOutput.LOG_WARNING);
    assertThat(SyslogOutput.priority("[] INFO io.jnbd.X - virtual thread", SyslogOutput.LOG_ERR))
        .isEqualTo(SyslogOutput.LOG_INFO);
    assertThat(SyslogOutput.priority("[main] DEBUG io.jnbd.X - detail", info)).isEqualTo(SyslogOutput.LOG_DEBUG);
    assertThat(SyslogOutput.priority("[main] TRACE io.jnbd.X - more", info)).isEqualTo(SyslogOutput.LOG_DEBUG);
    assertThat(SyslogOutput.priority("\tat io.jnbd.X.run(X.java:1)", SyslogOutput.LOG_WARNING))
        .isEqualTo(SyslogOutput.LOG_WARNING);
    assertThat(SyslogOutput.priority("Caused by: java.io.IOException: no", SyslogOutput.LOG_WARNING))
        .isEqualTo(SyslogOutput.LOG_WARNING);
    assertThat(SyslogOutput.priority("jnbd: unknown plugin 'x'", info)).isEqualTo(SyslogOutput.LOG_ERR);
    assertThat(SyslogOutput.priority("java.lang.IllegalStateException: a level word: INFO later", info))
        .isEqualTo(SyslogOutput.LOG_ERR);
  }
}
