package io.jnbd.testing;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * What a test opened, closed when the test ends, the last opened first (a server before the
 * origin it reads from); a test class holds one in an {@code @AutoClose} field.
 */
public final class CloseLater implements AutoCloseable {
  private final Deque<AutoCloseable> opened = new ArrayDeque<>();

  /** Returns {@code resource}, to be closed after the test. */
  public <T extends AutoCloseable> T add(T resource) {
    opened.push(resource);
    return resource;
  }

  @Override
  public void close() throws Exception {
    while (!opened.isEmpty()) {
      opened.pop().close();
    }
  }
}
