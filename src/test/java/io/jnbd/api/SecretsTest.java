package io.jnbd.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SecretsTest {
  @TempDir Path dir;

  @Test
  void eachSecretFromStdinGetsItsOwnLine() throws Exception {
    InputStream stdin = System.in;
    System.setIn(new ByteArrayInputStream("first\r\nsecond\n".getBytes(StandardCharsets.UTF_8)));
    try {
      assertThat(Secrets.read("password", "-")).isEqualTo("first");
      assertThat(Secrets.read("proxy-password", "-")).isEqualTo("second");
      assertThat(Secrets.read("cookie", "-")).isEmpty();
    } finally {
      System.setIn(stdin);
    }
  }

  @Test
  void aFileLosesOneTrailingNewlineAndALiteralIsItself() throws Exception {
    Path file = Files.writeString(dir.resolve("pw"), "s3cret\n\n");
    assertThat(Secrets.read("password", "+" + file)).isEqualTo("s3cret\n");
    assertThat(Secrets.read("password", "plain")).isEqualTo("plain");
    assertThatThrownBy(() -> Secrets.read("password", "+" + dir.resolve("missing")))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("password: cannot read the secret");
  }

  /** {@code -FD}, as virt-v2v passes a password: the descriptor is found through /proc/self/fd. */
  @Test
  void anInheritedDescriptorIsReadLikeAFile() throws Exception {
    Path file = Files.writeString(dir.resolve("pw-fd"), "from a descriptor\n");
    try (var open = Files.newInputStream(file); var fds = Files.list(Path.of("/proc/self/fd"))) {
      String fd = fds.filter(link -> {
        try {
          return Files.readSymbolicLink(link).equals(file);
        } catch (java.io.IOException gone) {
          return false;
        }
      }).findFirst().orElseThrow().getFileName().toString();
      assertThat(Secrets.read("password", "-" + fd)).isEqualTo("from a descriptor");
    }
    assertThatThrownBy(() -> Secrets.read("password", "-987654"))
        .isInstanceOf(ConfigException.class).hasMessageStartingWith("password: cannot read the secret");
  }
}
