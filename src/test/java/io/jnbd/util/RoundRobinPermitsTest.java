package io.jnbd.util;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

class RoundRobinPermitsTest {
  private final RoundRobinPermits permits = new RoundRobinPermits(1);
  private final List<String> order = new CopyOnWriteArrayList<>();

  /** Starts a thread that waits for a permit as `name` of `party`, notes it, and keeps it until `done`. */
  private Thread waiter(RoundRobinPermits.Party party, String name, CountDownLatch done) throws InterruptedException {
    int before = permits.waiting();
    Thread thread = Thread.ofVirtual().start(() -> {
      try {
        party.acquire();
        order.add(name);
        done.await();
        party.release();
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    });
    while (permits.waiting() == before) {
      Thread.onSpinWait();
    }
    return thread;
  }

  @Test
  void partiesTakeTurnsWhateverTheOrderOfAsking() throws Exception {
    RoundRobinPermits.Party greedy = permits.newParty();
    RoundRobinPermits.Party modest = permits.newParty();
    greedy.acquire();
    CountDownLatch done = new CountDownLatch(1);
    List<Thread> threads = List.of(
        waiter(greedy, "greedy-1", done), waiter(greedy, "greedy-2", done), waiter(greedy, "greedy-3", done),
        waiter(modest, "modest-1", done));
    done.countDown();
    greedy.release();
    for (Thread thread : threads) {
      thread.join();
    }
    // In order of asking, modest-1 would come last.
    assertThat(order).containsExactly("greedy-1", "modest-1", "greedy-2", "greedy-3");
  }

  @Test
  void anInterruptedWaiterLeavesItsTurnAndThePermitsStayWhole() throws Exception {
    RoundRobinPermits.Party holder = permits.newParty();
    RoundRobinPermits.Party other = permits.newParty();
    holder.acquire();
    CountDownLatch done = new CountDownLatch(1);
    Thread interrupted = Thread.ofVirtual().start(() -> {
      try {
        other.acquire();
        order.add("interrupted got a permit");
      } catch (java.io.InterruptedIOException e) {
        order.add("gave up");
      }
    });
    while (permits.waiting() == 0) {
      Thread.onSpinWait();
    }
    interrupted.interrupt();
    interrupted.join();
    assertThat(permits.waiting()).isZero();
    Thread next = waiter(other, "next", done);
    done.countDown();
    holder.release();
    next.join();
    assertThat(order).containsExactly("gave up", "next");
    // The permit came back after "next": one is free again.
    holder.acquire();
    holder.release();
  }
}
