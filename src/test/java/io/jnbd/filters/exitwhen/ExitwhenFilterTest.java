package io.jnbd.filters.exitwhen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Client;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.filters.Sleeper;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import java.nio.channels.Pipe;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExitwhenFilterTest {
  private static final Client CLIENT = new Client(null);
  @TempDir Path dir;

  /** The poller's sleep, in the test's hands: it reports each sleep and wakes on each tick. */
  private final Semaphore asleep = new Semaphore(0);
  private final Semaphore ticks = new Semaphore(0);
  private final Sleeper sleeper = duration -> {
    asleep.release();
    ticks.acquire();
  };
  private final CountDownLatch shutdown = new CountDownLatch(1);
  private Stack stack;

  private Stack start(String... config) {
    stack = Stacks.configured(List.of(new ExitwhenFilter(sleeper)), new ArrayDisk(4096), config);
    stack.attach(shutdown::countDown);
    return stack;
  }

  @AfterEach
  void unload() {
    if (stack != null) {
      stack.unload();
    }
  }

  private void awaitPollerAsleep() throws InterruptedException {
    assertThat(asleep.tryAcquire(30, TimeUnit.SECONDS)).as("the poller went to sleep").isTrue();
  }

  private boolean exitRequested() throws InterruptedException {
    return shutdown.await(30, TimeUnit.SECONDS);
  }

  @Test
  void anEventBeforeTheStartEndsTheServerAtOnce() throws Exception {
    Path flag = Files.createFile(dir.resolve("stop"));
    start("exit-when-file-created=" + flag);
    assertThat(exitRequested()).isTrue();
  }

  @Test
  void theIdlePollNoticesAnEvent() throws Exception {
    Path flag = dir.resolve("stop");
    start("exit-when-file-created=" + flag, "exit-when-poll=5");
    awaitPollerAsleep();
    assertThat(shutdown.getCount()).isEqualTo(1);
    Files.createFile(flag);
    ticks.release();
    assertThat(exitRequested()).isTrue();
  }

  @Test
  void withClientsConnectedNewOnesAreRefusedAndTheLastToLeaveEndsTheServer() throws Exception {
    Path keep = Files.createFile(dir.resolve("keep"));
    Stack stack = start("exit-when-file-deleted=" + keep);
    awaitPollerAsleep();
    stack.preconnect(CLIENT, false);
    Export first = stack.open(false, "");
    Export second = stack.open(false, "");
    Files.delete(keep);
    ticks.release();
    awaitPollerAsleep();
    assertThat(shutdown.getCount()).as("clients are still connected").isEqualTo(1);
    assertThatThrownBy(() -> stack.preconnect(CLIENT, false)).isInstanceOf(NbdException.class).hasMessageContaining("shutdown in progress");
    first.close();
    assertThat(shutdown.getCount()).isEqualTo(1);
    second.close();
    assertThat(exitRequested()).isTrue();
  }

  @Test
  void withoutConditionsTheFilterDoesNothing() throws Exception {
    Stack stack = start();
    stack.preconnect(CLIENT, false);
    stack.open(false, "").close();
    assertThat(shutdown.getCount()).isEqualTo(1);
  }

  @Test
  void processAndScriptConditions() throws Exception {
    Process sleeping = new ProcessBuilder("sleep", "60").start();
    ExitCondition process = new ExitCondition.ProcessExits(sleeping.pid());
    assertThat(process.happened()).isFalse();
    sleeping.destroy();
    sleeping.waitFor();
    assertThat(process.happened()).isTrue();
    assertThat(new ExitCondition.ScriptSays("exit 88").happened()).isTrue();
    assertThat(new ExitCondition.ScriptSays("echo not yet; exit 0").happened()).isFalse();
    assertThat(new ExitCondition.ScriptSays("exit 3").happened()).isFalse();
  }

  /** A pipe of this JVM's own stands in for an inherited one: the read end's descriptor is passed. */
  @Test
  void pipeClosedOnceItsWriterCloses() throws Exception {
    Set<String> before = pipeEnds();
    Pipe pipe = Pipe.open();
    int readEnd = -1;
    for (String fd : pipeEnds()) {
      if (!before.contains(fd) && readOnly(fd)) {
        readEnd = Integer.parseInt(fd);
      }
    }
    assertThat(readEnd).as("the new pipe's read end").isNotNegative();
    ExitCondition closed = new ExitCondition.PipeClosed(readEnd);
    try {
      pipe.sink().write(ByteBuffer.wrap(new byte[] {1, 2, 3}));
      assertThat(closed.happened()).isFalse();
      pipe.sink().close();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!closed.happened() && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      assertThat(closed.happened()).isTrue();
    } finally {
      closed.close();
      pipe.source().close();
    }
  }

  private static Set<String> pipeEnds() throws Exception {
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      return fds.filter(fd -> {
        try {
          return Files.readSymbolicLink(fd).toString().startsWith("pipe:");
        } catch (Exception e) {
          return false;
        }
      }).map(fd -> fd.getFileName().toString()).collect(Collectors.toSet());
    }
  }

  private static boolean readOnly(String fd) throws Exception {
    for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd))) {
      if (line.startsWith("flags:")) {
        return (Integer.parseInt(line.substring(6).trim(), 8) & 3) == 0;
      }
    }
    return false;
  }

  @Test
  void badValuesNameTheKey() {
    assertThatThrownBy(() -> new ExitwhenFilter().config("exit-when-poll", "0.5")).isInstanceOf(ConfigException.class).hasMessageContaining("exit-when-poll");
    assertThatThrownBy(() -> new ExitwhenFilter().config("exit-when-process-exits", "abc")).isInstanceOf(ConfigException.class).hasMessageContaining("exit-when-process-exits");
    assertThatThrownBy(() -> new ExitwhenFilter().config("exit-when-pipe-closed", "999")).isInstanceOf(ConfigException.class).hasMessageContaining("exit-when-pipe-closed");
  }
}
