package io.jnbd.filters.count;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.NbdException;
import io.jnbd.api.ReadData;
import io.jnbd.server.Stack;
import io.jnbd.testing.FlakyDisk;
import io.jnbd.testing.Layers;
import io.jnbd.testing.Stacks;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class CountFilterTest {
  @Test
  void addsUpTheBytesOfEachKindOverAllConnections() throws Exception {
    CountFilter count = new CountFilter();
    Stack stack = Stacks.configured(count, new FlakyDisk(1 << 20));
    try (Export first = stack.open(false, ""); Export second = stack.open(false, "")) {
      first.pread(ByteBuffer.allocate(4096), 0);
      second.pread(ByteBuffer.allocate(512).position(12), 4096);
      first.pwrite(ByteBuffer.allocate(1000), 0, 0);
      second.zero(8192, 65536, 0);
      first.trim(0, 3000, 0);
      first.flush();
      first.cache(0, 1 << 20);
      first.extents(0, 1 << 20, 0, new Extents(0, 1 << 20));
    }
    stack.unload();
    assertThat(count.totals()).isEqualTo("count bytes: read 4596, written 1000, zeroed 65536, trimmed 3000");
  }

  @Test
  void failedRequestsAreNotCounted() throws Exception {
    CountFilter count = new CountFilter();
    FlakyDisk disk = new FlakyDisk(1 << 20);
    Stack stack = Stacks.configured(count, disk);
    try (Export export = stack.open(false, "")) {
      disk.failCalls(4);
      assertThatThrownBy(() -> export.pread(ByteBuffer.allocate(4096), 0)).isInstanceOf(NbdException.class);
      assertThatThrownBy(() -> export.pwrite(ByteBuffer.allocate(4096), 0, 0)).isInstanceOf(NbdException.class);
      assertThatThrownBy(() -> export.zero(0, 4096, 0)).isInstanceOf(NbdException.class);
      assertThatThrownBy(() -> export.trim(0, 4096, 0)).isInstanceOf(NbdException.class);
      export.pread(ByteBuffer.allocate(100), 0);
    }
    assertThat(count.totals()).isEqualTo("count bytes: read 100, written 0, zeroed 0, trimmed 0");
  }

  @Test
  void readsHandedOverWithoutACopyCountToo() throws Exception {
    CountFilter count = new CountFilter();
    Stack stack = Stacks.configured(count, Layers.plugin("memory", "size=1M"));
    try (Export export = stack.open(false, "")) {
      export.pwrite(ByteBuffer.wrap(new byte[] {1, 2, 3}), 70_000, 0);
      try (ReadData data = export.readData(65536, 8192)) {
        assertThat(data).isInstanceOf(ReadData.Views.class);
      }
      try (ReadData data = export.readData(0, 512)) {
        assertThat(data).isInstanceOf(ReadData.Zeroes.class);
      }
    }
    stack.unload();
    assertThat(count.totals()).isEqualTo("count bytes: read 8704, written 3, zeroed 0, trimmed 0");
  }
}
