package io.jnbd.interop;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.api.Filter;
import io.jnbd.server.Catalog;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Filters compared with nbdkit 1.32's filters of the same name, over the memory plugin: the probe
 * (probe.py) must observe the same from both, except what {@link Probe#jnbdDifferences} and each
 * test list; filters that act on connections rather than requests run one nbdsh script against
 * both, which must print the same.
 */
@Tag("slow")
class FlowFiltersDifferentialTest {
  private static final List<String> MEMORY = List.of("memory", "size=4M");

  /** The start of the nbdsh scripts that open more than one connection: connect() opens one to URI. */
  private static final String CONNECT = """
      import nbd, time
      def connect():
          h = nbd.NBD()
          h.connect_uri(URI)
          return h
      """;

  @BeforeAll
  static void toolsInstalled() {
    Probe.assumeAvailable();
  }

  /** What the nbdsh script prints against jnbd and against nbdkit, which must be the same; URI is the server's. */
  private static List<String> sameOutput(List<String> filters, List<String> arguments, String script) throws Exception {
    return sameOutput(false, filters, arguments, script);
  }

  /** The same, with both servers on loopback TCP instead of a Unix socket when {@code tcp}. */
  private static List<String> sameOutput(boolean tcp, List<String> filters, List<String> arguments, String script) throws Exception {
    List<String> pluginAndArgs = new ArrayList<>(MEMORY);
    pluginAndArgs.addAll(arguments);
    List<String> jnbd;
    List<Filter> layers = filters.stream().map(Catalog::filter).toList();
    Stack stack = Stacks.configured(layers, Catalog.plugin(MEMORY.get(0)), pluginAndArgs.subList(1, pluginAndArgs.size()).toArray(String[]::new));
    try (TestServer server = new TestServer(stack, ServerConfig.defaults())) {
      jnbd = nbdsh(tcp ? "nbd://127.0.0.1:" + server.withTcp().port() : server.uri(), script);
    }
    List<String> command = new ArrayList<>();
    filters.forEach(filter -> command.add("--filter=" + filter));
    command.addAll(pluginAndArgs);
    try (Nbdkit nbdkit = new Nbdkit(tcp ? Nbdkit.freePort() : 0, command)) {
      assertThat(jnbd).as("jnbd, then nbdkit, with " + arguments).isEqualTo(nbdsh(nbdkit.uri(), script));
    }
    return jnbd;
  }

  private static List<String> nbdsh(String uri, String script) {
    return Tools.run(List.of("nbdsh", "-c", script.replace("URI", "'" + uri + "'")), Map.of(), 60)
        .assertSuccess().stdout().lines().toList();
  }

  @Test
  void blocksize() throws Exception {
    Map<String, String> expected = Probe.jnbdDifferences();
    // Both advertise that any request is accepted, so nbdkit sends block sizes too.
    expected.remove("block_size");
    Map<String, String> jnbd = Probe.assertSameOverMemory(List.of("blocksize"), List.of("minblock=4096", "maxdata=64k", "maxlen=128k"), true, expected);
    assertThat(jnbd).containsEntry("block_size", "[1, 4096, 4294967295]")
        .containsEntry("unaligned_write_readback", "\"000102030405066162630a0b0c0d0e0f\"");
  }

  /** Both filters change nothing by default, and take multi-conn away when told to. */
  @ParameterizedTest
  @CsvSource({"multi-conn, multi-conn-mode=disable", "noparallel, serialize=connections"})
  void multiConnOff(String filter, String argument) throws Exception {
    Probe.assertSameOverMemory(List.of(filter), List.of(), true, Probe.jnbdDifferences());
    Map<String, String> off = Probe.assertSameOverMemory(List.of(filter), List.of(argument), true, Probe.jnbdDifferences());
    assertThat(off).containsEntry("can_multi_conn", "false");
  }

  /** Only the pace of reads and writes may change, never what a client sees. */
  @Test
  void rate() throws Exception {
    Probe.assertSameOverMemory(List.of("rate"), List.of("rate=10G", "connection-rate=8G"), true, Probe.jnbdDifferences());
  }

  /** The second client is refused while the first is connected; one is admitted once it leaves. */
  @Test
  void limit() throws Exception {
    String script = CONNECT + """
        first = connect()
        try:
            connect()
            print("second admitted")
        except nbd.Error:
            print("second refused")
        first.shutdown()
        # The server learns of the disconnection a moment later.
        for attempt in range(100):
            try:
                connect()
                print("third admitted")
                break
            except nbd.Error:
                time.sleep(0.05)
        """;
    assertThat(sameOutput(List.of("limit"), List.of(), script)).containsExactly("second refused", "third admitted");
    assertThat(sameOutput(List.of("limit"), List.of("limit=2"), script)).containsExactly("second admitted", "third admitted");
  }

  /** Both servers stay while a client remains, and exit once the last has gone. */
  @Test
  void exitlast() throws Throwable {
    String script = CONNECT + """
        first = connect()
        second = connect()
        first.shutdown()
        third = connect()
        print("still serving after the first left:", len(third.pread(512, 0)))
        second.shutdown()
        third.shutdown()
        """;
    printsThenExits("exitlast", List.of(), script, List.of("still serving after the first left: 512"), () -> {});
  }

  /**
   * Once the file appears, both refuse new clients, keep serving the connected one, and exit when
   * it leaves.
   */
  @Test
  void exitwhen(@TempDir Path dir) throws Throwable {
    Path flag = dir.resolve("stop");
    String script = CONNECT + """
        first = connect()
        open(FLAG, "w").close()
        try:
            connect()
            print("new client admitted")
        except nbd.Error:
            print("new client refused")
        print("the connected one is served:", len(first.pread(512, 0)))
        first.shutdown()
        """.replace("FLAG", "'" + flag + "'");
    printsThenExits("exitwhen", List.of("exit-when-file-created=" + flag), script,
        List.of("new client refused", "the connected one is served: 512"), () -> Files.delete(flag));
  }

  /**
   * The nbdsh script against jnbd, then against nbdkit, each running the filter over a 1 MiB
   * memory disk: each prints what is expected, and then exits. {@code beforeNbdkit} clears what
   * the first run left behind.
   */
  private static void printsThenExits(String filter, List<String> arguments, String script, List<String> expected,
      Executable beforeNbdkit) throws Throwable {
    List<String> memory = new ArrayList<>(List.of("memory", "size=1M"));
    memory.addAll(arguments);
    Stack stack = Stacks.configured(List.of(Catalog.filter(filter)), Catalog.plugin("memory"),
        memory.subList(1, memory.size()).toArray(String[]::new));
    try (TestServer server = new TestServer(stack, ServerConfig.defaults())) {
      assertThat(nbdsh(server.uri(), script)).isEqualTo(expected);
      awaitTermination(server);
    }
    beforeNbdkit.execute();
    List<String> command = new ArrayList<>(List.of("--filter=" + filter));
    command.addAll(memory);
    try (Nbdkit nbdkit = new Nbdkit(command)) {
      assertThat(nbdsh(nbdkit.uri(), script)).isEqualTo(expected);
      assertThat(nbdkit.exitsWithin(30)).as("nbdkit exited").isTrue();
    }
  }

  private static void awaitTermination(TestServer server) throws Exception {
    CompletableFuture.runAsync(() -> {
      try {
        server.server().awaitTermination();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }).get(30, TimeUnit.SECONDS);
  }

  /**
   * Clients admitted and refused by keyword rules, over a Unix socket and over TCP. nbdkit 1.32.5
   * cannot parse rules with literal addresses ("don't know how to parse rule: allow=127.0.0.1"),
   * so those are tested against jnbd alone, in IpFilterTest.
   */
  @Test
  void ip() throws Exception {
    String script = """
        import nbd
        try:
            h = nbd.NBD()
            h.connect_uri(URI)
            print("admitted", h.get_size())
        except nbd.Error:
            print("refused")
        """;
    Map<List<String>, String> unix = new LinkedHashMap<>();
    unix.put(List.of("deny=anyunix"), "refused");
    unix.put(List.of("allow=anyunix", "deny=all"), "admitted 4194304");
    unix.put(List.of("deny=all"), "refused");
    unix.put(List.of("allow=anyipv4,anyipv6", "deny=any"), "refused");
    unix.put(List.of("deny=anyipv4,anyvsock"), "admitted 4194304");
    for (Map.Entry<List<String>, String> rules : unix.entrySet()) {
      assertThat(sameOutput(List.of("ip"), rules.getKey(), script)).as("%s", rules.getKey()).containsExactly(rules.getValue());
    }
    Map<List<String>, String> tcp = new LinkedHashMap<>();
    tcp.put(List.of("allow=anyipv4", "deny=all"), "admitted 4194304");
    tcp.put(List.of("deny=allipv4"), "refused");
    tcp.put(List.of("allow=anyipv6", "deny=all"), "refused");
    tcp.put(List.of("deny=anyunix,anyipv6"), "admitted 4194304");
    for (Map.Entry<List<String>, String> rules : tcp.entrySet()) {
      assertThat(sameOutput(true, List.of("ip"), rules.getKey(), script)).as("%s", rules.getKey()).containsExactly(rules.getValue());
    }
  }
}
