package io.jnbd.plugins;

import io.jnbd.api.Support;

/**
 * A writable {@link InMemoryExport}. RAM needs no flushing, so flush and FUA are no-ops that are
 * nonetheless truthful; trim, zero and extents are native, and zero is always fast.
 */
interface RamDiskExport extends InMemoryExport {
  boolean readOnly();

  @Override
  default void flush() {}

  @Override
  default boolean canWrite() {
    return !readOnly();
  }

  @Override
  default boolean canFlush() {
    return true;
  }

  @Override
  default Support canFua() {
    return Support.NATIVE;
  }

  @Override
  default boolean canTrim() {
    return true;
  }

  @Override
  default Support canZero() {
    return Support.NATIVE;
  }

  @Override
  default boolean canFastZero() {
    return true;
  }

  @Override
  default boolean canExtents() {
    return true;
  }
}
