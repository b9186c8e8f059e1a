package io.jnbd.util;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class DirectBufferPoolTest {
  @Test
  void aReturnedBufferIsReused() {
    DirectBufferPool pool = new DirectBufferPool(1 << 20);
    ByteBuffer first = pool.take(5000);
    assertThat(first.capacity()).isEqualTo(8192);
    assertThat(first.limit()).isEqualTo(5000);
    first.position(4000); // as a reply or a plugin leaves it
    pool.give(first);
    assertThat(pool.take(6000)).isSameAs(first);
    assertThat(pool.allocatedBytes()).isEqualTo(8192);
  }

  @Test
  void aBufferThePoolCannotKeepIsFreedAtOnceNotLeftToTheCollector() {
    int large = 4 << 20;
    DirectBufferPool pool = new DirectBufferPool(large);
    ByteBuffer[] held = new ByteBuffer[8];
    for (int round = 0; round < 5; round++) {
      for (int i = 0; i < held.length; i++) {
        held[i] = pool.take(large);
      }
      assertThat(pool.allocatedBytes()).isLessThanOrEqualTo(9L * large);
      for (ByteBuffer buffer : held) {
        pool.give(buffer.position(buffer.limit()));
      }
      // One is kept for reuse; the other seven went back to the system.
      assertThat(pool.allocatedBytes()).isEqualTo(large);
    }
  }

  @Test
  void closingFreesWhatIsKeptAndWhatComesBackLater() {
    DirectBufferPool pool = new DirectBufferPool(1 << 20);
    ByteBuffer kept = pool.take(8192);
    ByteBuffer out = pool.take(8192);
    pool.give(kept);
    pool.close();
    assertThat(pool.allocatedBytes()).isEqualTo(8192);
    pool.give(out);
    assertThat(pool.allocatedBytes()).isZero();
  }

  @Test
  void buffersInUseAndKeptStayWithinTheHeldLimit() {
    DirectBufferPool pool = new DirectBufferPool(1 << 20, 32 << 10);
    ByteBuffer[] held = {pool.take(16 << 10), pool.take(16 << 10), pool.take(16 << 10)};
    assertThat(pool.allocatedBytes()).isEqualTo(48 << 10);
    for (ByteBuffer buffer : held) {
      pool.give(buffer);
    }
    // The first one back found 48 KiB held against a limit of 32: it was let go.
    assertThat(pool.allocatedBytes()).isEqualTo(32 << 10);
    assertThat(pool.take(16 << 10)).isIn(held[1], held[2]);
  }

  @Test
  void buffersFromElsewhereAreIgnored() {
    DirectBufferPool pool = new DirectBufferPool(1 << 20);
    pool.give(ByteBuffer.allocateDirect(4096));
    pool.give(ByteBuffer.allocate(4096));
    pool.give(null);
    assertThat(pool.allocatedBytes()).isZero();
    assertThat(pool.take(4096).isDirect()).isTrue();
  }
}
