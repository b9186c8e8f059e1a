package io.jnbd.util;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

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
  void aLargeBufferThePoolCannotKeepIsFreedAtOnceNotLeftToTheCollector() {
    int large = DirectBufferPool.FREED_AT_ONCE;
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
    ByteBuffer freed = held[held.length - 1];
    assertThatThrownBy(() -> freed.put(0, (byte) 1)).isInstanceOf(IllegalStateException.class);
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
