package io.jnbd.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

/**
 * Seeded property tests over sequences of operations, in plain JUnit. Each try draws its own seed
 * from a master seed; a failure is shrunk to a shorter sequence that still fails (dropping runs of
 * operations, then single ones) and reported with both, so that {@code -Djnbd.seed=SEED} replays
 * exactly that try. The master seed is random unless set, and printed with every failure.
 */
public final class PropertyCheck {
  private PropertyCheck() {}

  /** A property of one sequence; throwing (an assertion or anything else) means it does not hold. */
  public interface Property<T> {
    void check(List<T> sequence) throws Exception;
  }

  /**
   * Checks the property on {@code tries} sequences made by {@code generate} from a seeded random
   * source. With {@code -Djnbd.seed=N}, only the try with that seed runs.
   */
  public static <T> void forAll(int tries, Function<Random, List<T>> generate, Property<T> property) {
    Long replay = Long.getLong("jnbd.seed");
    Random master = new Random(replay != null ? replay : System.nanoTime());
    for (int i = 0; i < (replay != null ? 1 : tries); i++) {
      long seed = replay != null ? replay : master.nextLong();
      List<T> sequence = generate.apply(new Random(seed));
      Throwable failure = failureOf(property, sequence);
      if (failure != null) {
        List<T> shortest = shrink(property, sequence);
        AssertionError report = new AssertionError("property failed for seed " + seed + " (-Djnbd.seed=" + seed
            + " replays it) on " + sequence.size() + " operations; shrunk to " + shortest.size() + ": " + shortest
            + "\nfailure of the shrunk sequence: " + failureOf(property, shortest));
        report.initCause(failure);
        throw report;
      }
    }
  }

  /** A sequence no longer than the given failing one that still fails, found by deleting parts of it. */
  static <T> List<T> shrink(Property<T> property, List<T> failing) {
    List<T> current = failing;
    for (int chunk = Math.max(1, current.size() / 2); chunk >= 1; chunk /= 2) {
      boolean removedAny = true;
      while (removedAny) {
        removedAny = false;
        for (int from = 0; from + chunk <= current.size(); ) {
          List<T> candidate = new ArrayList<>(current.subList(0, from));
          candidate.addAll(current.subList(from + chunk, current.size()));
          if (failureOf(property, candidate) != null) {
            current = candidate;
            removedAny = true;
          } else {
            from += chunk;
          }
        }
      }
    }
    return current;
  }

  private static <T> Throwable failureOf(Property<T> property, List<T> sequence) {
    try {
      property.check(sequence);
      return null;
    } catch (Exception | AssertionError e) {
      return e;
    }
  }

  /** A list of between {@code min} and {@code max} elements, each made by {@code element}. */
  public static <T> List<T> listOf(Random random, int min, int max, Function<Random, T> element) {
    int size = min + random.nextInt(max - min + 1);
    List<T> list = new ArrayList<>(size);
    for (int i = 0; i < size; i++) {
      list.add(element.apply(random));
    }
    return list;
  }
}
