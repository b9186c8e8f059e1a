package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Client;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.ServerHandle;
import io.jnbd.protocol.Nbd;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.TestServer;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** What the server offers layers beyond requests: a say before each handshake, and a way to stop it. */
class ServerHooksTest {
  /** Refuses clients while {@link #refusing}; stops the server when a client opens "stop". */
  static final class Gatekeeper implements Filter {
    final List<Client> seen = new CopyOnWriteArrayList<>();
    volatile boolean refusing = true;
    ServerHandle server;

    @Override public String name() { return "gatekeeper"; }
    @Override public String description() { return "refuses clients, stops the server"; }
    @Override public void attach(ServerHandle server) { this.server = server; }

    @Override
    public void preconnect(Layer next, Client client, boolean readOnly) throws IOException {
      seen.add(client);
      if (refusing) {
        throw new NbdException(Errno.EPERM, "not now");
      }
      next.preconnect(client, readOnly);
    }

    @Override
    public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
      if (exportName.equals("stop")) {
        server.requestShutdown();
      }
      return next.open(readOnly, exportName);
    }
  }

  @Test
  void aLayerRefusesAClientBeforeTheHandshakeAndSeesWhereItCameFrom() throws Exception {
    Gatekeeper gatekeeper = new Gatekeeper();
    try (TestServer server = new TestServer(List.of(gatekeeper), new ArrayDisk(4096), ServerConfig.defaults());
        RawClient refused = new RawClient(server.socket())) {
      assertThatThrownBy(() -> refused.greet(3)).isInstanceOf(IOException.class);
      assertThat(gatekeeper.seen).hasSize(1);
      assertThat(gatekeeper.seen.get(0).address()).isInstanceOf(UnixDomainSocketAddress.class);
      gatekeeper.refusing = false;
      try (RawClient welcome = new RawClient(server.socket())) {
        welcome.greet(3).goStructured();
      }
    }
  }

  @Test
  void aLayerCanStopTheServer() throws Exception {
    Gatekeeper gatekeeper = new Gatekeeper();
    gatekeeper.refusing = false;
    try (TestServer server = new TestServer(List.of(gatekeeper), new ArrayDisk(4096), ServerConfig.defaults())) {
      Thread waiter = Thread.ofPlatform().start(() -> {
        try {
          server.server().awaitTermination();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      try (RawClient client = new RawClient(server.socket())) {
        client.greet(3).option(Nbd.Opt.EXPORT_NAME, RawClient.utf8("stop"));
        waiter.join(TimeUnit.SECONDS.toMillis(30));
      }
      assertThat(waiter.isAlive()).as("server still running").isFalse();
    }
  }
}
