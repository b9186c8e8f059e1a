package io.jnbd.filters.ip;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class IpFilterTest {
  private static final SocketAddress UNIX = UnixDomainSocketAddress.of("");

  private static IpFilter filter(String... rules) {
    IpFilter filter = new IpFilter();
    for (String rule : rules) {
      int eq = rule.indexOf('=');
      assertThat(filter.config(rule.substring(0, eq), rule.substring(eq + 1))).isTrue();
    }
    filter.configComplete();
    return filter;
  }

  private static SocketAddress ip(String literal) {
    return new InetSocketAddress(literal, 10809);
  }

  @Test
  void allowWinsOverDenyAndTheRestIsAdmitted() {
    IpFilter loopbackOnly = filter("deny=all", "allow=127.0.0.1,::1");
    assertThat(loopbackOnly.admits(ip("127.0.0.1"))).isTrue();
    assertThat(loopbackOnly.admits(ip("::1"))).isTrue();
    assertThat(loopbackOnly.admits(ip("127.0.0.2"))).isFalse();
    assertThat(loopbackOnly.admits(UNIX)).isFalse();
    IpFilter notTen = filter("deny=10.0.0.0/8");
    assertThat(notTen.admits(ip("10.200.3.4"))).isFalse();
    assertThat(notTen.admits(ip("11.0.0.1"))).isTrue();
    assertThat(notTen.admits(ip("::a00:1"))).as("an IPv6 address with the same bits").isTrue();
    assertThat(notTen.admits(UNIX)).isTrue();
  }

  @Test
  void networksMatchTheirPrefixBitsOnly() {
    IpFilter linkLocal = filter("deny=fe80::/10,192.168.2.128/25");
    assertThat(linkLocal.admits(ip("fe80::1"))).isFalse();
    assertThat(linkLocal.admits(ip("febf:ffff::1"))).isFalse();
    assertThat(linkLocal.admits(ip("fec0::1"))).isTrue();
    assertThat(linkLocal.admits(ip("192.168.2.200"))).isFalse();
    assertThat(linkLocal.admits(ip("192.168.2.127"))).isTrue();
    IpFilter everyIpv4 = filter("deny=1.2.3.4/0");
    assertThat(everyIpv4.admits(ip("200.1.1.1"))).isFalse();
    assertThat(everyIpv4.admits(ip("::2"))).isTrue();
  }

  @Test
  void familyKeywords() {
    IpFilter ipv6Only = filter("allow=anyipv6", "deny=all");
    assertThat(ipv6Only.admits(ip("2001:db8::1"))).isTrue();
    assertThat(ipv6Only.admits(ip("192.0.2.1"))).isFalse();
    IpFilter unixOnly = filter("allow=allunix", "deny=any");
    assertThat(unixOnly.admits(UNIX)).isTrue();
    assertThat(unixOnly.admits(ip("127.0.0.1"))).isFalse();
    assertThat(filter("deny=anyvsock").admits(UNIX)).isTrue();
  }

  @Test
  void aClientWithoutAnAddressIsRefusedOnlyWhenThereAreRules() {
    assertThat(new IpFilter().admits(null)).isTrue();
    assertThat(filter("deny=10.0.0.1").admits(null)).isFalse();
    assertThat(filter("allow=", "deny=,").admits(null)).as("empty lists are no rules").isTrue();
  }

  @Test
  void badRulesAreOneLineErrorsNamingTheKey() {
    for (String bad : List.of("10.0.0.0/33", "bogus", "256.1.1.1", "disk.example.com", "::1/129", "1.2.3.4/x")) {
      assertThatThrownBy(() -> filter("allow=" + bad)).as(bad).isInstanceOf(ConfigException.class).hasMessageContaining("allow=" + bad);
    }
    assertThatThrownBy(() -> filter("deny=uid:0")).isInstanceOf(ConfigException.class).hasMessageContaining("not supported");
  }

  @Test
  @Tag("slow")
  void nbdinfoOverTcpIsAdmittedOrRefusedByItsAddress() throws Exception {
    Tools.require("nbdinfo");
    for (List<String> rules : List.of(List.of("allow=127.0.0.1", "deny=all"), List.of("deny=127.0.0.0/8"))) {
      IpFilter filter = filter(rules.toArray(String[]::new));
      try (TestServer server = new TestServer(List.of(filter), new ArrayDisk(4096), ServerConfig.defaults()).withTcp()) {
        Tools.Result info = Tools.run("nbdinfo", "--size", "nbd://127.0.0.1:" + server.port());
        assertThat(info.exitCode()).as("%s", rules).isEqualTo(rules.get(0).startsWith("allow") ? 0 : 1);
      }
    }
  }
}
