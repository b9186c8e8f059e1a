package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

class MemoryBudgetTest {
  private static final long MIB = 1 << 20;

  /** Waits until {@code thread} is parked (waiting for memory), within a bounded time. */
  private static void awaitWaiting(Thread thread) throws InterruptedException {
    for (int i = 0; thread.getState() != Thread.State.WAITING; i++) {
      assertThat(i).as("%s waits for memory", thread.getName()).isLessThan(5000);
      Thread.sleep(1);
    }
  }

  @Test
  void requestsWaitingForTheServerAreServedInOrderOfArrival() throws Exception {
    MemoryBudget budget = new MemoryBudget(160 * MIB); // shares of 10 MiB
    MemoryBudget.Account holder = budget.openAccount();
    assertThat(holder.take(150 * MIB)).isTrue();
    List<String> order = new CopyOnWriteArrayList<>();
    Thread large = Thread.ofPlatform().name("large").start(() -> {
      budget.openAccount().take(40 * MIB);
      order.add("large");
    });
    awaitWaiting(large);
    assertThat(budget.starved()).isTrue();
    // 5 MiB would fit beside the 150 held, but the 40 MiB request came first.
    Thread small = Thread.ofPlatform().name("small").start(() -> {
      budget.openAccount().take(5 * MIB);
      order.add("small");
    });
    // Parked behind the large one (without the line, it would have taken its 5 MiB at once).
    awaitWaiting(small);
    assertThat(order).isEmpty();
    holder.give(150 * MIB);
    large.join(10_000);
    small.join(10_000);
    assertThat(order).containsExactlyInAnyOrder("large", "small");
    assertThat(budget.starved()).isFalse();
  }

  @Test
  void aRequestOnlyOverItsOwnShareDoesNotHoldUpOthers() throws Exception {
    MemoryBudget budget = new MemoryBudget(160 * MIB);
    MemoryBudget.Account busy = budget.openAccount();
    assertThat(busy.take(8 * MIB)).isTrue();
    Thread overShare = Thread.ofPlatform().name("over-share").start(() -> busy.take(8 * MIB));
    awaitWaiting(overShare);
    assertThat(budget.starved()).as("waiting for its own share is not starving").isFalse();
    assertThat(budget.openAccount().take(5 * MIB)).isTrue();
    busy.close();
    overShare.join(10_000);
  }
}
