package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Plugin;
import io.jnbd.cli.Options.Param;
import io.jnbd.server.ServerConfig;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class OptionsTest {
  @Test
  void parsesTheVirtV2vCommandLine() {
    Options o = Options.parse(new String[] {
        "--exit-with-parent", "--foreground", "--pidfile", "/tmp/p", "--unix", "/tmp/s",
        "--threads", "16", "-D", "nbdkit.backend.datapath=0", "--readonly", "--verbose",
        "--filter", "cow", "--filter", "retry", "curl", "url=https://h/x?a=b", "timeout=2000"});
    assertThat(o.exitWithParent).isTrue();
    assertThat(o.detaches()).isFalse();
    assertThat(o.pidfile).isEqualTo(Path.of("/tmp/p"));
    assertThat(o.unix).isEqualTo(Path.of("/tmp/s"));
    assertThat(o.privateSocket()).isFalse();
    assertThat(o.debugFlags).containsExactly("nbdkit.backend.datapath=0");
    assertThat(o.filters).containsExactly("cow", "retry");
    assertThat(o.plugin()).isEqualTo("curl");
    assertThat(o.params()).containsExactly(
        new Param("url", "https://h/x?a=b"), new Param("timeout", "2000"));
    ServerConfig config = o.serverConfig();
    assertThat(config.readOnly()).isTrue();
    assertThat(config.verbose()).isTrue();
    assertThat(config.maxRequestsPerConnection()).isEqualTo(16);
  }

  @Test
  void optionsMayFollowThePluginAsWithNbdkit() {
    Options o = Options.parse(new String[] {"-U", "-", "memory", "1G", "-r", "--run", "nbdinfo $uri"});
    assertThat(o.plugin()).isEqualTo("memory");
    assertThat(o.params()).containsExactly(new Param(null, "1G"));
    assertThat(o.readOnly).isTrue();
    assertThat(o.run).isEqualTo("nbdinfo $uri");
    assertThat(o.privateSocket()).isTrue();
  }

  @Test
  void doubleDashEndsTheOptions() {
    Options o = Options.parse(new String[] {"-f", "--", "file", "-r", "x=1"});
    assertThat(o.readOnly).isFalse();
    assertThat(o.params()).containsExactly(new Param(null, "-r"), new Param("x", "1"));
  }

  @Test
  void aWordIsKeyValueOnlyWhenWhatPrecedesTheEqualsSignIsAKey() {
    Options o = Options.parse(new String[] {"-f", "file", "/tmp/a=b", "=x", "a.b-c_d=1=2", "9x=1"});
    assertThat(o.params()).containsExactly(
        new Param(null, "/tmp/a=b"), new Param(null, "=x"), new Param("a.b-c_d", "1=2"), new Param(null, "9x=1"));
  }

  @Test
  void listensWhereAsked() {
    assertThat(Options.parse(new String[] {"memory"}).privateSocket()).isFalse();
    assertThat(Options.parse(new String[] {"memory"}).detaches()).isTrue();
    assertThat(Options.parse(new String[] {"--run", "x", "memory"}).privateSocket()).isTrue();
    assertThat(Options.parse(new String[] {"--run", "x", "-p", "0", "memory"}).privateSocket()).isFalse();
    assertThat(Options.parse(new String[] {"--run", "x", "-i", "::1", "memory"}).privateSocket()).isFalse();
    assertThat(Options.parse(new String[] {"-s", "memory"}).detaches()).isFalse();
    assertThat(Options.parse(new String[] {"-t", "0", "memory"}).maxRequests())
        .isEqualTo(ServerConfig.DEFAULT_MAX_REQUESTS);
    assertThat(Options.parse(new String[] {"-n", "--log=null", "--tls=off", "memory"}).log).isEqualTo("null");
  }

  @Test
  void rejectsContradictionsAndBadValues() {
    for (String[] args : List.of(
        new String[] {"-U", "/s", "-p", "1", "memory"},
        new String[] {"-s", "--run", "x", "memory"},
        new String[] {"-p", "70000", "memory"},
        new String[] {"-t", "-1", "memory"},
        new String[] {"--log=file", "memory"},
        new String[] {"--tls=maybe", "memory"},
        new String[] {"--no-such-option", "memory"})) {
      assertThatThrownBy(() -> Options.parse(args)).as(String.join(" ", args))
          .isInstanceOf(ConfigException.class);
    }
  }

  @Test
  void theMemoryBudgetIsASystemProperty() {
    String[] args = {"memory"};
    assertThat(Options.parse(args).serverConfig().memoryBudget()).isEqualTo(ServerConfig.defaults().memoryBudget());
    try {
      System.setProperty(Options.MEMORY_BUDGET_PROPERTY, "1G");
      assertThat(Options.parse(args).serverConfig().memoryBudget()).isEqualTo(1L << 30);
      for (String bad : List.of("0", "lots", "1X")) {
        System.setProperty(Options.MEMORY_BUDGET_PROPERTY, bad);
        assertThatThrownBy(() -> Options.parse(args)).as(bad).isInstanceOf(ConfigException.class)
            .hasMessageStartingWith("-Djnbd.memoryBudget: ");
      }
    } finally {
      System.clearProperty(Options.MEMORY_BUDGET_PROPERTY);
    }
  }

  @Test
  void aBareValueGoesToTheMagicKeyAndIsAnErrorWithoutOne() {
    TestDisk disk = new TestDisk();
    Main.configure(disk, List.of(), Options.parse(new String[] {"-f", "testdisk", "size=1k", "4k"}));
    assertThat(disk.size()).isEqualTo(4096);

    Plugin noMagic = new TestDisk() {
      @Override
      public String magicConfigKey() {
        return null;
      }
    };
    assertThatThrownBy(() -> Main.configure(noMagic, List.of(), Options.parse(new String[] {"-f", "x", "4k"})))
        .isInstanceOf(ConfigException.class)
        .hasMessage("testdisk: '4k' is not key=value, and this plugin takes no bare value");
  }

  @Test
  void nbdkitsOtherSpellingsOfTheOptionsAreAccepted() {
    Options o = Options.parse(new String[] {"--no-fork", "--read-only", "--pid-file", "/tmp/p", "--ip-addr", "::1",
        "--export-name", "disk", "--new-style", "--name", "input", "testdisk", "1M"});
    assertThat(o.foreground).isTrue();
    assertThat(o.readOnly).isTrue();
    assertThat(o.pidfile).isEqualTo(Path.of("/tmp/p"));
    assertThat(o.ipaddr).isEqualTo("::1");
    assertThat(o.exportName).isEqualTo("disk");
    assertThat(o.name).isEqualTo("input");
    assertThat(Options.parse(new String[] {"--export", "e", "--stdin", "testdisk", "1M"}).single).isTrue();
  }

  @Test
  void theLastOfMinus4AndMinus6Counts() {
    assertThat(Options.parse(new String[] {"-4", "-6", "testdisk", "1M"}).tcpFamily).isEqualTo(java.net.StandardProtocolFamily.INET6);
    assertThat(Options.parse(new String[] {"-6", "-4", "testdisk", "1M"}).tcpFamily).isEqualTo(java.net.StandardProtocolFamily.INET);
    assertThat(Options.parse(new String[] {"testdisk", "1M"}).tcpFamily).isNull();
  }

  @Test
  void handshakeOptionsReachTheServerConfig() {
    assertThat(Options.parse(new String[] {"testdisk", "1M"}).serverConfig().handshake()).isEqualTo(ServerConfig.Handshake.FULL);
    ServerConfig.Handshake limited = Options.parse(new String[] {"--mask-handshake=7", "--no-sr", "--no-mc", "testdisk", "1M"})
        .serverConfig().handshake();
    assertThat(limited).isEqualTo(new ServerConfig.Handshake(3, false, false));
    assertThat(Options.parse(new String[] {"--mask-handshake", "1", "testdisk", "1M"}).serverConfig().handshake().flagMask()).isEqualTo(1);
  }
}
