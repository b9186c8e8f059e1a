package io.jnbd.testing;

import io.jnbd.filters.Sleeper;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** A sleeper that returns at once and remembers every wait it was asked for. */
public final class RecordingSleeper implements Sleeper {
  public final List<Duration> waits = new CopyOnWriteArrayList<>();

  @Override
  public void sleep(Duration duration) {
    waits.add(duration);
  }

  public static List<Duration> seconds(long... values) {
    return Arrays.stream(values).mapToObj(Duration::ofSeconds).toList();
  }
}
