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

  /** -FD reads an inherited descriptor; here one this JVM opened, found by where it points. */
  @Test
  void aDescriptorIsReadToItsEndWithoutTheTrailingNewline() throws Exception {
    Path file = Files.writeString(dir.resolve("pw"), "from a descriptor\n");
    try (InputStream open = Files.newInputStream(file)) {
      int fd = descriptorOf(file);
      assertThat(Secrets.read("password", "-" + fd)).isEqualTo("from a descriptor");
      assertThat(Secrets.fromDescriptor("-" + fd)).isTrue();
    }
    assertThat(Secrets.fromDescriptor("-")).isFalse();
    assertThat(Secrets.fromDescriptor("-x3")).isFalse();
    assertThat(Secrets.read("password", "-x3")).as("not a descriptor: a literal").isEqualTo("-x3");
    assertThatThrownBy(() -> Secrets.read("password", "-1"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("file descriptors 0, 1 and 2 cannot carry a secret");
    assertThatThrownBy(() -> Secrets.read("password", "-999999999"))
        .isInstanceOf(ConfigException.class).hasMessage("password: -999999999: file descriptor 999999999 is not open");
  }

  private static int descriptorOf(Path file) throws Exception {
    try (var fds = Files.list(Path.of("/proc/self/fd"))) {
      for (Path fd : fds.toList()) {
        try {
          if (Files.readSymbolicLink(fd).equals(file.toRealPath())) {
            return Integer.parseInt(fd.getFileName().toString());
          }
        } catch (java.io.IOException gone) {
          // The listing's own descriptor is closed by now.
        }
      }
    }
    throw new AssertionError("no descriptor open on " + file);
  }
}
