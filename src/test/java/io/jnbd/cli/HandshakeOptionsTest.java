package io.jnbd.cli;

import static io.jnbd.cli.MainTest.jnbd;
import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.cli.MainTest.Result;
import io.jnbd.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * --no-sr, --no-meta-contexts and --mask-handshake, seen from real clients: nbdinfo's protocol
 * line (the same words nbdkit 1.32 gets with the same options) and what nbdsh negotiated.
 */
class HandshakeOptionsTest {
  @TempDir Path dir;

  /** nbdinfo's first line for a server started with these options. */
  private String protocolLine(String... options) throws Exception {
    Path out = dir.resolve("nbdinfo.txt");
    Result r = jnbd(command(options, "nbdinfo \"$uri\" > " + out));
    assertThat(r.status()).as(r.err()).isZero();
    return Files.readAllLines(out).get(0);
  }

  /** What nbdsh negotiated, asking for base:allocation: "STRUCTURED CAN_META_CONTEXT". */
  private String negotiated(String... options) throws Exception {
    Path out = dir.resolve("nbdsh.txt");
    String script = "print(h.get_structured_replies_negotiated(), h.can_meta_context(\"base:allocation\"))";
    Result r = jnbd(command(options, "PATH=/usr/bin:$PATH nbdsh --base-allocation -u \"$uri\" -c '" + script + "' > " + out));
    assertThat(r.status()).as(r.err()).isZero();
    return Files.readString(out).trim();
  }

  private static String[] command(String[] options, String run) {
    List<String> args = new ArrayList<>(List.of(options));
    args.addAll(List.of("-U", "-", "testdisk", "1M", "--run", run));
    return args.toArray(String[]::new);
  }

  @Test
  void byDefaultClientsGetFixedNewstyleStructuredRepliesAndBlockStatus() throws Exception {
    Tools.require("nbdinfo", "nbdsh");
    assertThat(protocolLine()).isEqualTo("protocol: newstyle-fixed without TLS, using structured packets");
    assertThat(negotiated()).isEqualTo("True True");
  }

  @Test
  void noStructuredRepliesLeavesSimpleRepliesAndNoMetaContexts() throws Exception {
    Tools.require("nbdinfo", "nbdsh");
    assertThat(protocolLine("--no-sr")).isEqualTo("protocol: newstyle-fixed without TLS, using simple packets");
    assertThat(negotiated("--no-structured-replies")).isEqualTo("False False");
  }

  @Test
  void noMetaContextsKeepsStructuredRepliesWithoutBlockStatus() throws Exception {
    Tools.require("nbdsh");
    assertThat(negotiated("--no-meta-contexts")).isEqualTo("True False");
    assertThat(negotiated("--no-mc")).isEqualTo("True False");
  }

  @Test
  void maskHandshakeWithholdsFixedNewstyle() throws Exception {
    Tools.require("nbdinfo");
    assertThat(protocolLine("--mask-handshake=0")).isEqualTo("protocol: newstyle without TLS, using simple packets");
    assertThat(protocolLine("--mask-handshake=2")).isEqualTo("protocol: newstyle without TLS, using simple packets");
    assertThat(protocolLine("--mask-handshake=1")).isEqualTo("protocol: newstyle-fixed without TLS, using structured packets");
  }
}
