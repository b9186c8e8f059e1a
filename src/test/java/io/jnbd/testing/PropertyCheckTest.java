package io.jnbd.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class PropertyCheckTest {
  @Test
  void aFailingPropertyIsShrunkToTheOperationsThatMatterAndNamesItsSeed() {
    // Fails whenever 7 comes anywhere after 3: the shortest failing sequence is [3, 7].
    PropertyCheck.Property<Integer> noSevenAfterThree = sequence -> {
      int three = sequence.indexOf(3);
      if (three >= 0 && sequence.subList(three, sequence.size()).contains(7)) {
        throw new AssertionError("7 after 3");
      }
    };
    assertThatThrownBy(() -> PropertyCheck.forAll(200, random -> PropertyCheck.listOf(random, 0, 30, r -> r.nextInt(10)), noSevenAfterThree))
        .isInstanceOf(AssertionError.class)
        .hasMessageContaining("-Djnbd.seed=")
        .hasMessageContaining("shrunk to 2: [3, 7]");
  }

  @Test
  void aHoldingPropertyRunsEveryTry() {
    AtomicInteger tries = new AtomicInteger();
    PropertyCheck.forAll(25, random -> List.of(random.nextInt()), sequence -> tries.incrementAndGet());
    assertThat(tries.get()).isEqualTo(25);
  }
}
