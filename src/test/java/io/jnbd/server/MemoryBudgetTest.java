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
    List<MemoryBudget.Account> holders = new java.util.ArrayList<>();
    for (int i = 0; i < 16; i++) {
      holders.add(budget.openAccount());
      assertThat(holders.get(i).take(10 * MIB)).isTrue();
    }
    List<String> order = new CopyOnWriteArrayList<>();
    Thread first = Thread.ofPlatform().name("first").start(() -> {
      budget.openAccount().take(8 * MIB);
      order.add("first");
    });
    awaitWaiting(first);
    assertThat(budget.starved()).isTrue();
    Thread second = Thread.ofPlatform().name("second").start(() -> {
      budget.openAccount().take(2 * MIB);
      order.add("second");
    });
    awaitWaiting(second);
    // 2 MiB would now fit the second, but the first came before it.
    holders.get(0).give(2 * MIB);
    Thread.sleep(50);
    assertThat(order).isEmpty();
    holders.get(0).give(8 * MIB);
    first.join(10_000);
    second.join(10_000);
    assertThat(order).containsExactlyInAnyOrder("first", "second");
    assertThat(budget.starved()).isFalse();
  }

  @Test
  void largeRequestsShareHalfTheBudgetAndDoNotHoldUpSmallOnes() throws Exception {
    MemoryBudget budget = new MemoryBudget(160 * MIB); // shares of 10 MiB; 80 MiB for larger requests
    MemoryBudget.Account one = budget.openAccount();
    MemoryBudget.Account two = budget.openAccount();
    assertThat(one.take(40 * MIB)).isTrue();
    assertThat(two.take(40 * MIB)).isTrue();
    List<String> order = new CopyOnWriteArrayList<>();
    Thread third = Thread.ofPlatform().name("third large").start(() -> {
      budget.openAccount().take(40 * MIB);
      order.add("third large");
    });
    awaitWaiting(third);
    assertThat(budget.starved()).as("a large request waits for the larger requests' half").isTrue();
    // The server has 80 MiB free: a small request takes its part at once, the large one waits on.
    assertThat(budget.openAccount().take(5 * MIB)).isTrue();
    assertThat(order).isEmpty();
    one.give(40 * MIB);
    third.join(10_000);
    assertThat(order).containsExactly("third large");
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

  @Test
  void theDefaultBudgetIsWhatNbdcopyKeepsInFlightWhenTheHeapAllowsIt() {
    // The budget is resident memory: 4 connections x 64 requests x 256 KiB, not more, and never
    // below the largest request (32 MiB) however small the heap.
    assertThat(MemoryBudget.defaultCapacity()).isBetween(32 * MIB, 64 * MIB);
    if (Runtime.getRuntime().maxMemory() >= 256 * MIB) {
      assertThat(MemoryBudget.defaultCapacity()).isEqualTo(64 * MIB);
    }
    assertThat(new MemoryBudget(MemoryBudget.defaultCapacity()).connectionShare())
        .isEqualTo(MemoryBudget.defaultCapacity() / 16);
  }
}
