package io.jnbd.filters;

import io.jnbd.api.Export;
import io.jnbd.api.FilterExport;
import java.io.IOException;
import java.util.function.IntConsumer;
import java.util.function.IntPredicate;

/**
 * Counts the exports open through one filter over all connections, for filters that act on the
 * number of clients (limit, exitlast, exitwhen). An export counts from when it is admitted until
 * its close below has returned.
 */
public final class ExportCount {
  private final IntConsumer afterClose;
  private int open;

  /** @param afterClose told, after each close, how many exports are still open */
  public ExportCount(IntConsumer afterClose) {
    this.afterClose = afterClose;
  }

  public synchronized int open() {
    return open;
  }

  /** Counts the export until it closes. */
  public Export track(Export export) throws IOException {
    return admit(export, alreadyOpen -> true);
  }

  /**
   * Counts the export if {@code admit} accepts the number already open, atomically with that
   * check; otherwise closes it and returns null.
   */
  public Export admit(Export export, IntPredicate admit) throws IOException {
    boolean admitted;
    synchronized (this) {
      admitted = admit.test(open);
      if (admitted) {
        open++;
      }
    }
    if (!admitted) {
      export.close();
      return null;
    }
    return new FilterExport(export, FilterExport.Reads.UNTOUCHED) {
      @Override
      public void close() throws IOException {
        try {
          next.close();
        } finally {
          int remaining;
          synchronized (ExportCount.this) {
            remaining = --open;
          }
          afterClose.accept(remaining);
        }
      }
    };
  }
}
