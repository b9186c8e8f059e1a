package io.jnbd.filters.multiconn;

import java.util.ArrayList;
import java.util.List;

/**
 * The connections whose flushes are replayed on each other: all of them, or those to one export
 * name. Guarded by the filter's lock, except {@link #dirty}, which requests set without it.
 */
final class FlushGroup {
  final String name;
  final List<MultiConnExport> members = new ArrayList<>();
  /** Something was written on some member since the group was last flushed. */
  volatile boolean dirty;

  FlushGroup(String name) {
    this.name = name;
  }
}
