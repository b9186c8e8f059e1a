package io.jnbd.filters.exitlast;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Export;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ExitlastFilterTest {
  @Test
  void asksTheServerToExitWhenTheLastClientLeavesNotBefore() throws Exception {
    AtomicInteger shutdowns = new AtomicInteger();
    Stack stack = Stacks.configured(List.of(new ExitlastFilter()), new ArrayDisk(4096));
    stack.attach(shutdowns::incrementAndGet);
    Export first = stack.open(false, "");
    Export second = stack.open(false, "");
    first.close();
    assertThat(shutdowns.get()).isZero();
    second.close();
    assertThat(shutdowns.get()).isEqualTo(1);
  }
}
