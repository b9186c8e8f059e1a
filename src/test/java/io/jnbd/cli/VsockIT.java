package io.jnbd.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.Tools;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * --vsock as a user starts it. This machine has no vsock loopback transport, so no client can
 * connect (NativeListenerTest serves real clients through the same code over a Unix socket):
 * the test checks that the server holds the port, seen from another process, and names it in
 * $uri and $port.
 */
@Tag("slow")
class VsockIT {
  @Test
  void listensOnTheVsockPortItNamesInTheUri() throws Exception {
    Tools.require("python3-libnbd");
    String bindAgain = "import socket, sys\n"
        + "s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)\n"
        + "try:\n"
        + "    s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1])))\n"
        + "    print('port free')\n"
        + "except OSError as e:\n"
        + "    print('port taken' if e.errno == 98 else e)\n";
    Tools.Result run = Tools.run(ProcessIT.jnbd("--vsock", "-p", "0", "--run",
            "echo \"$uri $port\"; python3 -c \"$BIND_AGAIN\" \"$port\"", "memory", "1M"),
        Map.of("BIND_AGAIN", bindAgain), 120);
    assertThat(run.exitCode()).as(run.stderr()).isZero();
    List<String> lines = run.stdout().lines().toList();
    assertThat(lines).hasSize(2);
    String port = lines.get(0).replaceFirst(".* ", "");
    assertThat(lines.get(0)).isEqualTo("nbd+vsock://1:" + port + " " + port);
    assertThat(Long.parseLong(port)).isBetween(1024L, 0xfffffffeL);
    assertThat(lines.get(1)).isEqualTo("port taken");
  }
}
