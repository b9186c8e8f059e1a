package io.jnbd.plugins;

import io.jnbd.api.Export;
import io.jnbd.api.Support;

/**
 * An export whose data is held in RAM or computed, and is the same for every connection:
 * multi-conn is safe, and a cache hint is honoured by doing nothing since there is nothing to
 * bring in.
 */
interface InMemoryExport extends Export {
  @Override
  default void cache(long offset, long length) {}

  @Override
  default Support canCache() {
    return Support.NATIVE;
  }

  @Override
  default boolean canMultiConn() {
    return true;
  }
}
