package io.jnbd.plugins.ssh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.server.Catalog;
import io.jnbd.testing.Stacks;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad keys and values are refused before any connection is tried, with the key in the message. */
class SshConfigTest {
  private static void refused(String message, String... keyValues) {
    assertThatThrownBy(() -> Stacks.configured(List.of(), Catalog.plugin("ssh"), keyValues))
        .isInstanceOf(ConfigException.class)
        .hasMessage(message);
  }

  @Test
  void requiredKeysAndCombinations() {
    refused("ssh: host is required (e.g. host=server.example.com)", "path=/x");
    refused("ssh: path is required (e.g. path=/var/tmp/disk.img)", "host=a");
    refused("ssh: create=true needs create-size", "host=a", "path=/x", "create=true");
  }

  @Test
  void badValues(@TempDir Path dir) {
    refused("ssh: host: must not be empty", "host=", "path=/x");
    refused("ssh: port: must be between 1 and 65535: 0", "host=a", "path=/x", "port=0");
    refused("ssh: create-mode: expected octal permissions such as 0644: '9'", "host=a", "path=/x", "create-mode=9");
    refused("ssh: create-size: not a size: 'q'", "host=a", "path=/x", "create-size=q");
    refused("ssh: identity: cannot read " + dir.resolve("absent"), "host=a", "path=/x", "identity=" + dir.resolve("absent"));
    refused("ssh: config: cannot read " + dir.resolve("absent"), "host=a", "path=/x", "config=" + dir.resolve("absent"));
    refused("ssh: unknown parameter 'hostname'", "hostname=a");
  }

  @Test
  void settingsDoNotPrintThePassword() {
    SshSettings settings = new SshSettings("server", "/disk.img", 2222, "root", "hunter2", List.of(), List.of(), true,
        null, false, Duration.ofSeconds(1), false, -1, 0600);
    assertThat(settings.toString()).contains("root@server:2222:/disk.img").doesNotContain("hunter2");
  }
}
