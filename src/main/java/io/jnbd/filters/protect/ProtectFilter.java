package io.jnbd.filters.protect;

import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.FilterExport;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.filters.protect.ProtectedRanges.Range;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * The protect filter: refuses, with EPERM, any write, trim or zero that would change a byte in a
 * protected range. Such a request is let through when the protected bytes already hold what it
 * would leave there (the same data, or zeroes for trim and zero): the filter reads them from the
 * layer below to find out. Reads and everything else pass through.
 *
 * <p>The check and the write are not atomic: a write from another connection in between can
 * change what the check saw, as in nbdkit.
 */
public final class ProtectFilter implements Filter {
  /** How much of a protected range is read from below at a time. */
  private static final int CHUNK = 1 << 20;

  private final List<Range> given = new ArrayList<>();
  private ProtectedRanges ranges = new ProtectedRanges(given);

  @Override
  public String name() {
    return "protect";
  }

  @Override
  public String description() {
    return "refuse writes that would change protected byte ranges";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("protect", "START-END|~START-END",
        "Refuse changes to bytes START to END inclusive (0NN octal, 0xNN hex; START or END left out: the start or end "
            + "of the disk); ~ protects all but them. Repeatable (default: none)."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("protect")) {
      return false;
    }
    given.addAll(ProtectedRanges.parse(key, value));
    return true;
  }

  @Override
  public void configComplete() {
    ranges = new ProtectedRanges(given);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return new Protected(next.open(readOnly, exportName));
  }

  private final class Protected extends FilterExport {
    Protected(Export next) {
      super(next, Reads.UNTOUCHED);
    }

    @Override
    public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
      for (Range range : ranges.within(offset, buffer.remaining())) {
        int from = buffer.position() + (int) (range.from() - offset);
        requireUnchanged(range, buffer.slice(from, (int) (range.to() - range.from())));
      }
      next.pwrite(buffer, offset, flags);
    }

    @Override
    public void trim(long offset, long length, int flags) throws IOException {
      requireZeroes(offset, length);
      next.trim(offset, length, flags);
    }

    @Override
    public void zero(long offset, long length, int flags) throws IOException {
      requireZeroes(offset, length);
      next.zero(offset, length, flags);
    }

    private void requireZeroes(long offset, long length) throws IOException {
      for (Range range : ranges.within(offset, length)) {
        requireUnchanged(range, null);
      }
    }

    /** Fails unless the layer below holds {@code wanted} (null: zeroes) in {@code range}. */
    private void requireUnchanged(Range range, ByteBuffer wanted) throws IOException {
      ByteBuffer present = ByteBuffer.allocate((int) Math.min(CHUNK, range.to() - range.from()));
      ByteBuffer zeroes = wanted == null ? ByteBuffer.allocate(present.capacity()) : null;
      for (long at = range.from(); at < range.to(); at += present.limit()) {
        present.clear().limit((int) Math.min(present.capacity(), range.to() - at));
        next.pread(present, at);
        present.flip();
        ByteBuffer expected = wanted != null
            ? wanted.slice((int) (at - range.from()), present.limit())
            : zeroes.clear().limit(present.limit());
        if (present.mismatch(expected) >= 0) {
          throw new NbdException(Errno.EPERM, "protect: the request would change protected bytes in "
              + range.from() + "-" + (range.to() - 1));
        }
      }
    }
  }
}
