package io.jnbd.filters.multiconn;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Flags;
import io.jnbd.api.NbdException;
import io.jnbd.api.Support;
import io.jnbd.api.ThreadModel;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Exports;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class MultiConnFilterTest {
  /** A disk that can flush but does not promise multi-conn: what emulate mode is for. */
  private static ArrayDisk diskWithoutMultiConn() {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    disk.multiConn = false;
    return disk;
  }

  private static Stack stack(ArrayDisk disk, String... config) {
    return Stacks.configured(List.of(new MultiConnFilter()), disk, config);
  }

  private static void write(Export export) throws Exception {
    export.pwrite(ByteBuffer.allocate(512), 0, 0);
  }

  private static void read(Export export) throws Exception {
    export.pread(ByteBuffer.allocate(512), 0);
  }

  @Test
  void emulateFlushesEveryConnectionThatWroteOrReadWhileAnotherWrote() throws Exception {
    ArrayDisk disk = diskWithoutMultiConn();
    Stack stack = stack(disk);
    try (Export a = stack.open(false, ""); Export b = stack.open(false, ""); Export c = stack.open(false, "")) {
      assertThat(a.canMultiConn()).isTrue();
      write(a);
      write(b);
      c.flush();
      assertThat(disk.flushes.get()).as("a and b wrote; c is clean").isEqualTo(2);
      c.flush();
      assertThat(disk.flushes.get()).as("nothing dirty any more").isEqualTo(2);
      read(a);
      c.flush();
      assertThat(disk.flushes.get()).as("a read, but nothing was written since").isEqualTo(2);
      read(a);
      write(b);
      c.flush();
      assertThat(disk.flushes.get()).as("b wrote, and a may hold what it read before").isEqualTo(4);
    }
  }

  @Test
  void fastTrackingFlushesAllOrNothing() throws Exception {
    ArrayDisk disk = diskWithoutMultiConn();
    Stack stack = stack(disk, "multi-conn-track-dirty=fast");
    try (Export a = stack.open(false, ""); Export b = stack.open(false, ""); Export c = stack.open(false, "")) {
      write(a);
      c.flush();
      assertThat(disk.flushes.get()).isEqualTo(3);
      b.flush();
      assertThat(disk.flushes.get()).isEqualTo(3);
    }
  }

  @Test
  void withoutTrackingEveryFlushReachesEveryConnection() throws Exception {
    ArrayDisk disk = diskWithoutMultiConn();
    Stack stack = stack(disk, "multi-conn-mode=emulate", "multi-conn-track-dirty=off");
    try (Export a = stack.open(false, ""); Export b = stack.open(false, "")) {
      a.flush();
      b.flush();
      assertThat(disk.flushes.get()).isEqualTo(4);
    }
  }

  @Test
  void emulatedFuaIsAFlushOfTheGroup() throws Exception {
    ArrayDisk disk = diskWithoutMultiConn();
    Stack stack = stack(disk);
    try (Export a = stack.open(false, ""); Export b = stack.open(false, "")) {
      assertThat(a.canFua()).isEqualTo(Support.EMULATE);
      write(b);
      a.pwrite(ByteBuffer.allocate(512), 4096, Flags.FUA);
      assertThat(disk.fuaWrites.get()).isZero();
      assertThat(disk.flushes.get()).isEqualTo(2);
    }
  }

  @Test
  void pluginModeSkipsOnlyTheFlushesOfCleanConnections() throws Exception {
    ArrayDisk disk = new ArrayDisk(1 << 20);
    Stack stack = stack(disk);
    try (Export a = stack.open(false, ""); Export b = stack.open(false, "")) {
      assertThat(a.canMultiConn()).isTrue();
      assertThat(a.canFua()).isEqualTo(Support.NATIVE);
      a.flush();
      assertThat(disk.flushes.get()).isZero();
      write(a);
      b.flush();
      assertThat(disk.flushes.get()).as("plugin mode does not replay").isZero();
      a.flush();
      assertThat(disk.flushes.get()).isEqualTo(1);
      a.pwrite(ByteBuffer.allocate(512), 0, Flags.FUA);
      a.flush();
      assertThat(disk.flushes.get()).as("a FUA write is durable already").isEqualTo(1);
    }
  }

  @Test
  void exportNameGroupsKeepFlushesToTheirOwnExport() throws Exception {
    ArrayDisk disk = diskWithoutMultiConn();
    Stack stack = stack(disk, "multi-conn-exportname=true");
    try (Export a = stack.open(false, "one"); Export b = stack.open(false, "two"); Export c = stack.open(false, "one")) {
      write(a);
      write(b);
      c.flush();
      assertThat(disk.flushes.get()).isEqualTo(1);
    }
  }

  @Test
  void modesDecideWhatIsAdvertised() throws Exception {
    Map<String, Boolean> expected = new LinkedHashMap<>();
    expected.put("auto", true);
    expected.put("emulate", true);
    expected.put("plugin", false);
    expected.put("unsafe", true);
    expected.put("disable", false);
    for (Map.Entry<String, Boolean> mode : expected.entrySet()) {
      try (Export export = stack(diskWithoutMultiConn(), "multi-conn-mode=" + mode.getKey()).open(false, "")) {
        assertThat(export.canMultiConn()).as(mode.getKey()).isEqualTo(mode.getValue());
      }
    }
    try (Export export = stack(new ArrayDisk(4096), "multi-conn-mode=disable").open(false, "")) {
      assertThat(export.canMultiConn()).isFalse();
    }
  }

  @Test
  void autoDisablesUnderSerializedConnections() throws Exception {
    MultiConnFilter filter = new MultiConnFilter();
    filter.threadModelBelow(ThreadModel.SERIALIZE_CONNECTIONS);
    ArrayDisk disk = new ArrayDisk(4096);
    try (Export export = filter.open(disk, false, "")) {
      assertThat(export.canMultiConn()).isFalse();
    }
  }

  @Test
  void emulationNeedsFlushBelow() {
    ArrayDisk disk = diskWithoutMultiConn();
    disk.flush = false;
    assertThatThrownBy(() -> stack(disk).open(false, ""))
        .isInstanceOf(NbdException.class).hasMessageContaining("requires working flush");
  }

  @Test
  void badValuesNameTheKey() {
    assertThatThrownBy(() -> new MultiConnFilter().config("multi-conn-mode", "sometimes"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("multi-conn-mode").hasMessageContaining("emulate");
    assertThatThrownBy(() -> new MultiConnFilter().config("multi-conn-track-dirty", "slow"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("multi-conn-track-dirty");
    assertThatThrownBy(() -> new MultiConnFilter().config("multi-conn-exportname", "maybe"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("multi-conn-exportname");
  }

  @Test
  @Tag("slow")
  void nbdinfoSeesMultiConnPerModeAndNbdshSeesFlushesReplayed() throws Exception {
    Tools.require("nbdinfo", "nbdsh");
    for (String mode : List.of("auto", "plugin", "disable")) {
      MultiConnFilter filter = new MultiConnFilter();
      filter.config("multi-conn-mode", mode);
      try (TestServer server = new TestServer(List.of(filter), diskWithoutMultiConn(), ServerConfig.defaults())) {
        int status = Tools.run("nbdinfo", "--can", "multi-conn", server.uri()).exitCode();
        assertThat(status).as(mode).isEqualTo(mode.equals("auto") ? 0 : 2);
      }
    }
    ArrayDisk disk = diskWithoutMultiConn();
    try (TestServer server = new TestServer(List.of(new MultiConnFilter()), disk, ServerConfig.defaults())) {
      String script = """
          import nbd
          handles = []
          for i in range(3):
              h = nbd.NBD()
              h.connect_uri(URI)
              handles.append(h)
          handles[0].pwrite(b"a" * 512, 0)
          handles[1].pwrite(b"b" * 512, 512)
          handles[2].flush()
          """.replace("URI", "'" + server.uri() + "'");
      Tools.run(List.of("nbdsh", "-c", script), Map.of(), 60).assertSuccess();
      assertThat(disk.flushes.get()).as("the flush on the third connection reached the two that wrote").isEqualTo(2);
    }
  }

  @Test
  void aReadHandedOverMarksItsConnectionAsHavingRead() throws Exception {
    ArrayDisk disk = diskWithoutMultiConn();
    disk.handsOver = true;
    Stack stack = stack(disk);
    try (Export a = stack.open(false, ""); Export b = stack.open(false, ""); Export c = stack.open(false, "")) {
      assertThat(Exports.handedOver(a, 0, 512)).hasSize(512);
      write(b);
      c.flush();
      assertThat(disk.flushes.get()).as("b wrote, and a may hold what it read").isEqualTo(2);
    }
  }
}
