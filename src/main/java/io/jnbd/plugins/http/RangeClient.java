package io.jnbd.plugins.http;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Random access to one remote object by byte ranges. Implementations are shared by every NBD
 * connection of an export and must be safe for concurrent use. Failures are {@link
 * io.jnbd.api.NbdException}s carrying EIO, with messages free of secrets.
 */
interface RangeClient extends AutoCloseable {
  /** The object's size in bytes, probed once and cached. */
  long size() throws IOException;

  /** Fills {@code dst} from its position to its limit with the bytes at {@code offset}. */
  void read(ByteBuffer dst, long offset) throws IOException;

  @Override
  void close();
}
