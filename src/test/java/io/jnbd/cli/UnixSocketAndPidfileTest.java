package io.jnbd.cli;

import static io.jnbd.cli.MainTest.jnbd;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.cli.MainTest.Result;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * -U and -P never remove or replace what is not jnbd's: anything in the way is refused with one
 * line and status 1, and at exit only the files jnbd wrote, still as it wrote them, are removed.
 * Every server here runs with --run, so that one that wrongly starts also stops.
 */
class UnixSocketAndPidfileTest {
  @TempDir Path dir;

  @ParameterizedTest
  @ValueSource(strings = {"regular file", "empty directory", "dangling symlink", "fifo"})
  void socketPathHoldingAnythingButASocketIsRefusedAndLeftAlone(String kind) throws Exception {
    Path path = dir.resolve("nbd.sock");
    create(kind, path);
    Object before = fileKey(path);

    Result r = jnbd("-U", path.toString(), "testdisk", "1M", "--run", "true");

    assertFailedWith(r, "jnbd: cannot bind to " + path + ": Address already in use");
    assertThat(fileKey(path)).as("the %s is still there", kind).isEqualTo(before);
  }

  @Test
  void socketOfAnotherServerIsLeftToIt() throws Exception {
    Path path = dir.resolve("nbd.sock");
    UnixDomainSocketAddress address = UnixDomainSocketAddress.of(path);
    try (ServerSocketChannel other = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
      other.bind(address);

      Result r = jnbd("-U", path.toString(), "testdisk", "1M", "--run", "true");

      assertFailedWith(r, "jnbd: cannot bind to " + path
          + ": Address already in use (another server is listening on it)");
      // Still reachable: connecting throws if the socket file was removed or replaced.
      SocketChannel.open(address).close();
    }
  }

  @Test
  void socketInAMissingDirectoryNamesTheDirectory() {
    Path missing = dir.resolve("missing");
    Path path = missing.resolve("nbd.sock");

    Result r = jnbd("-U", path.toString(), "testdisk", "1M", "--run", "true");

    assertFailedWith(r, "jnbd: cannot create socket " + path + ": directory " + missing + " does not exist");
  }

  @ParameterizedTest
  @ValueSource(strings = {"empty directory", "dangling symlink", "symlink to a file", "fifo"})
  void pidfilePathHoldingAnythingButARegularFileIsRefusedAndLeftAlone(String kind) throws Exception {
    Path pidfile = dir.resolve("jnbd.pid");
    create(kind, pidfile);
    Object before = fileKey(pidfile);
    Path socket = dir.resolve("nbd.sock");
    List<Path> present = list(dir);

    Result r = jnbd("-U", socket.toString(), "-P", pidfile.toString(), "testdisk", "1M", "--run", "true");

    assertFailedWith(r, "jnbd: cannot write pidfile " + pidfile + ": it is a");
    assertThat(fileKey(pidfile)).as("the %s is still there", kind).isEqualTo(before);
    assertThat(list(dir)).as("no temporary file or socket is left").isEqualTo(present);
  }

  @Test
  void pidfileInAMissingDirectoryNamesTheDirectory() throws Exception {
    Path missing = dir.resolve("missing");
    Path pidfile = missing.resolve("jnbd.pid");
    Path socket = dir.resolve("nbd.sock");

    Result r = jnbd("-U", socket.toString(), "-P", pidfile.toString(), "testdisk", "1M", "--run", "true");

    assertFailedWith(r, "jnbd: cannot write pidfile " + pidfile + ": directory " + missing + " does not exist");
    assertThat(list(dir)).isEmpty();
  }

  @Test
  void stalePidfileIsReplacedAndRemovedAtExit() throws Exception {
    Path pidfile = dir.resolve("jnbd.pid");
    Files.writeString(pidfile, "1\n");
    Path seen = dir.resolve("seen");

    Result r = jnbd("-U", "-", "-P", pidfile.toString(), "testdisk", "1M", "--run", "cat " + pidfile + " > " + seen);

    assertThat(r.status()).as(r.err()).isZero();
    assertThat(seen).hasContent(ProcessHandle.current().pid() + "\n");
    assertThat(pidfile).doesNotExist();
  }

  /** nbdkit rewrites a pidfile in place; other tools write a new one and rename it over. */
  @ParameterizedTest
  @ValueSource(strings = {"echo 1 > PIDFILE", "echo 1 > PIDFILE.new && mv PIDFILE.new PIDFILE"})
  void pidfileReplacedWhileServingIsLeftToItsNewOwner(String replace) throws Exception {
    Path pidfile = dir.resolve("jnbd.pid");

    Result r = jnbd("-U", "-", "-P", pidfile.toString(), "testdisk", "1M",
        "--run", replace.replace("PIDFILE", pidfile.toString()));

    assertThat(r.status()).as(r.err()).isZero();
    assertThat(pidfile).hasContent("1\n");
  }

  private static void assertFailedWith(Result r, String messageStart) {
    assertThat(r.status()).as(r.err()).isEqualTo(1);
    assertThat(r.out()).isEmpty();
    assertThat(r.err().lines().toList()).hasSize(1);
    assertThat(r.err()).startsWith(messageStart);
  }

  private void create(String kind, Path path) throws Exception {
    switch (kind) {
      case "regular file" -> Files.writeString(path, "someone's data\n");
      case "empty directory" -> Files.createDirectory(path);
      case "dangling symlink" -> Files.createSymbolicLink(path, dir.resolve("nowhere"));
      case "symlink to a file" -> Files.createSymbolicLink(path, Files.writeString(dir.resolve("target"), "x"));
      case "fifo" -> assertThat(new ProcessBuilder("mkfifo", path.toString()).start().waitFor()).isZero();
      default -> throw new IllegalArgumentException(kind);
    }
  }

  private static Object fileKey(Path path) throws IOException {
    return Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
  }

  private static List<Path> list(Path directory) throws IOException {
    try (Stream<Path> entries = Files.list(directory)) {
      return entries.sorted().toList();
    }
  }
}
