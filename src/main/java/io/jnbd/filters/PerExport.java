package io.jnbd.filters;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a filter keeps for each export name (a cache, an overlay), made by the first connection
 * to that export, shared by every later one, and closed when the filter is unloaded. A lock, not
 * a concurrent map, so that making one (which may create files) happens once per name.
 */
public final class PerExport<T extends AutoCloseable> {
  private static final Logger log = LoggerFactory.getLogger(PerExport.class);

  /** Makes the resource of an export. */
  public interface Maker<T> {
    T make(String exportName) throws IOException;
  }

  /** Checks that an existing resource still fits an export opened again. */
  public interface Check<T> {
    void check(String exportName, T existing) throws IOException;
  }

  /** For resources that fit any later opening of their export. */
  public static <T> Check<T> noCheck() {
    return (exportName, existing) -> {};
  }

  private final String filter;
  private final String what;
  private final ReentrantLock lock = new ReentrantLock();
  private final Map<String, T> byName = new HashMap<>();

  /** {@code filter} and {@code what} name it in the log ("cache", "the cache"). */
  public PerExport(String filter, String what) {
    this.filter = filter;
    this.what = what;
  }

  /** The resource of {@code exportName}, made now if it is the first opening. */
  public T get(String exportName, Maker<T> maker, Check<T> check) throws IOException {
    lock.lock();
    try {
      T existing = byName.get(exportName);
      if (existing != null) {
        check.check(exportName, existing);
        return existing;
      }
      T made = maker.make(exportName);
      byName.put(exportName, made);
      return made;
    } finally {
      lock.unlock();
    }
  }

  /** The resource of an export once a client opened it, or null; for tests. */
  public T find(String exportName) {
    lock.lock();
    try {
      return byName.get(exportName);
    } finally {
      lock.unlock();
    }
  }

  /** Closes every resource, after {@code report} has seen each (for its statistics). */
  public void closeAll(BiConsumer<String, T> report) {
    lock.lock();
    try {
      byName.forEach((name, resource) -> {
        report.accept(name, resource);
        try {
          resource.close();
        } catch (Exception e) {
          log.warn("{}: closing {} of '{}': {}", filter, what, name, e.getMessage());
        }
      });
      byName.clear();
    } finally {
      lock.unlock();
    }
  }
}
