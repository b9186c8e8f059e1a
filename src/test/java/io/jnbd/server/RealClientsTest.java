package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import org.junit.jupiter.api.Test;

class RealClientsTest {
  @Test
  void nbdinfoSeesSizeAndFlags() throws Exception {
    Tools.require("nbdinfo");
    ArrayDisk disk = new ArrayDisk(1 << 20);
    try (TestServer server = new TestServer(disk)) {
      String json = Tools.run("nbdinfo", "--json", server.uri()).assertSuccess().stdout();
      assertThat(json).contains("\"export-size\": 1048576");
      assertThat(json).contains("\"can_multi_conn\": true");
    }
  }
}
