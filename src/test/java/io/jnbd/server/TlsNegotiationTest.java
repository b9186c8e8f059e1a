package io.jnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.plugins.MemoryPlugin;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.server.tls.TlsMode;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.server.tls.TlsSettings;
import io.jnbd.testing.Stacks;
import io.jnbd.testing.TestPki;
import io.jnbd.testing.TestServer;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The handshake's TLS rules, byte by byte: what --tls=off|on|require answer before and after STARTTLS. */
class TlsNegotiationTest {
  @TempDir Path dir;
  private Path pki;

  @BeforeEach
  void certificates() {
    pki = TestPki.certificates(dir.resolve("pki"), "negotiation test CA");
  }

  private TestServer serve(TlsMode mode) {
    return serve(mode, false);
  }

  private TestServer serve(TlsMode mode, boolean verifyPeer) {
    TlsPolicy tls = mode == TlsMode.OFF ? TlsPolicy.OFF : TlsPolicy.load(new TlsSettings(mode, pki, null, verifyPeer, false));
    return new TestServer(Stacks.configured(List.of(), new MemoryPlugin(), "size=1M"), ServerConfig.defaults(), tls)
        .withTcp();
  }

  /** One option reply: its type and data. */
  private record Reply(int option, int type, byte[] data) {}

  /** A fixed-newstyle client over a plain socket, or over TLS once {@link #startTls} succeeded. */
  private final class Client implements AutoCloseable {
    private final CountingSocket plain;
    private Socket socket;
    private DataInputStream in;
    private DataOutputStream out;

    Client(int port) throws IOException {
      plain = new CountingSocket(port);
      plain.setSoTimeout(30_000);
      use(plain);
      assertThat(in.readLong()).isEqualTo(Nbd.NBDMAGIC);
      assertThat(in.readLong()).isEqualTo(Nbd.IHAVEOPT);
      in.readShort();
      out.writeInt(Nbd.ClientFlag.FIXED_NEWSTYLE | Nbd.ClientFlag.NO_ZEROES);
    }

    private void use(Socket s) throws IOException {
      socket = s;
      in = new DataInputStream(s.getInputStream());
      out = new DataOutputStream(s.getOutputStream());
    }

    void send(int option, byte[] data) throws IOException {
      out.writeLong(Nbd.IHAVEOPT);
      out.writeInt(option);
      out.writeInt(data.length);
      out.write(data);
      out.flush();
    }

    Reply reply() throws IOException {
      assertThat(in.readLong()).isEqualTo(Nbd.OPTION_REPLY_MAGIC);
      int option = in.readInt();
      int type = in.readInt();
      byte[] data = in.readNBytes(in.readInt());
      return new Reply(option, type, data);
    }

    /** Sends an option and returns the type of its last reply (the ACK or error after any others). */
    int ask(int option, byte[] data) throws IOException {
      send(option, data);
      Reply reply;
      do {
        reply = reply();
        assertThat(reply.option()).isEqualTo(option);
      } while (reply.type() == Rep.SERVER || reply.type() == Rep.INFO || reply.type() == Rep.META_CONTEXT);
      return reply.type();
    }

    void startTls() throws Exception {
      startTls(null, false);
    }

    /** STARTTLS, then a handshake with only {@code protocol} (null: the JDK's default), with the client certificate or not. */
    SSLSession startTls(String protocol, boolean clientCertificate) throws Exception {
      return startTls(protocol, clientCertificate, null);
    }

    /** As above, offering only {@code cipherSuites} in that order (null: the JDK's default). */
    SSLSession startTls(String protocol, boolean clientCertificate, String[] cipherSuites) throws Exception {
      assertThat(ask(Opt.STARTTLS, new byte[0])).isEqualTo(Rep.ACK);
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(clientCertificate ? clientKeys() : null, TestPki.trusting(pki), null);
      SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(plain, "localhost", plain.getPort(), true);
      tls.setUseClientMode(true);
      if (protocol != null) {
        tls.setEnabledProtocols(new String[] {protocol});
      }
      if (cipherSuites != null) {
        tls.setEnabledCipherSuites(cipherSuites);
      }
      tls.startHandshake();
      use(tls);
      return tls.getSession();
    }

    private KeyManager[] clientKeys() throws Exception {
      PrivateKey key;
      try (PEMParser parser = new PEMParser(Files.newBufferedReader(pki.resolve("client-key.pem")))) {
        key = new JcaPEMKeyConverter().getPrivateKey((PrivateKeyInfo) parser.readObject());
      }
      Certificate certificate;
      try (InputStream in = Files.newInputStream(pki.resolve("client-cert.pem"))) {
        certificate = CertificateFactory.getInstance("X.509").generateCertificate(in);
      }
      KeyStore keys = KeyStore.getInstance("PKCS12");
      keys.load(null, null);
      keys.setKeyEntry("client", key, new char[0], new Certificate[] {certificate});
      KeyManagerFactory factory = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      factory.init(keys, new char[0]);
      return factory.getKeyManagers();
    }

    /** Sends a transmission-phase request without payload. */
    void request(int type) throws IOException {
      out.writeInt(Nbd.REQUEST_MAGIC);
      out.writeShort(0);
      out.writeShort(type);
      out.writeLong(1);
      out.writeLong(0);
      out.writeInt(0);
      out.flush();
    }

    /** Reads what the server still sends (a TLS alert, say) up to its end; a server that never closes times out. */
    void awaitClosedByServer() throws IOException {
      try {
        in.readAllBytes();
      } catch (java.net.SocketException e) {
        // A reset ends the connection as well as a close.
      }
    }

    @Override
    public void close() throws IOException {
      socket.close();
    }
  }

  /** A client socket that counts the bytes it receives, TLS records included (TLS layered on it reads through it). */
  private static final class CountingSocket extends Socket {
    private final AtomicLong received = new AtomicLong();

    CountingSocket(int port) throws IOException {
      super(InetAddress.getLoopbackAddress(), port);
    }

    @Override
    public InputStream getInputStream() throws IOException {
      return new FilterInputStream(super.getInputStream()) {
        @Override
        public int read() throws IOException {
          int b = super.read();
          if (b >= 0) {
            received.incrementAndGet();
          }
          return b;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
          int n = super.read(buffer, offset, length);
          if (n > 0) {
            received.addAndGet(n);
          }
          return n;
        }
      };
    }
  }

  private static byte[] goDefaultExport() {
    return new byte[] {0, 0, 0, 0, 0, 0};
  }

  @Test
  void requiredTlsRefusesEveryOptionBeforeStartTlsThenForgetsNothingItShould() throws Exception {
    try (TestServer server = serve(TlsMode.REQUIRE); Client client = new Client(server.port())) {
      assertThat(client.ask(Opt.LIST, new byte[0])).isEqualTo(Rep.ERR_TLS_REQD);
      assertThat(client.ask(Opt.STRUCTURED_REPLY, new byte[0])).isEqualTo(Rep.ERR_TLS_REQD);
      assertThat(client.ask(Opt.GO, goDefaultExport())).isEqualTo(Rep.ERR_TLS_REQD);
      assertThat(client.ask(Opt.STARTTLS, new byte[] {1})).isEqualTo(Rep.ERR_INVALID);
      client.startTls();
      assertThat(client.ask(Opt.STARTTLS, new byte[0])).as("a second STARTTLS").isEqualTo(Rep.ERR_INVALID);
      assertThat(client.ask(Opt.LIST, new byte[0])).isEqualTo(Rep.ACK);
      assertThat(client.ask(Opt.GO, goDefaultExport())).isEqualTo(Rep.ACK);
    }
  }

  @Test
  void exportNameBeforeStartTlsEndsTheConnectionWhenTlsIsRequired() throws Exception {
    try (TestServer server = serve(TlsMode.REQUIRE)) {
      try (Client client = new Client(server.port())) {
        client.send(Opt.EXPORT_NAME, new byte[0]);
        client.awaitClosedByServer();
      }
      try (Client client = new Client(server.port())) {
        assertThat(client.ask(Opt.ABORT, new byte[0])).as("ABORT is always allowed").isEqualTo(Rep.ACK);
      }
    }
  }

  @Test
  void startTlsForgetsWhatWasNegotiatedInTheClear() throws Exception {
    try (TestServer server = serve(TlsMode.ON); Client client = new Client(server.port())) {
      assertThat(client.ask(Opt.LIST, new byte[0])).as("optional TLS").isEqualTo(Rep.ACK);
      assertThat(client.ask(Opt.STRUCTURED_REPLY, new byte[0])).isEqualTo(Rep.ACK);
      client.startTls();
      // Structured replies were negotiated before TLS: after it, they are off again.
      assertThat(client.ask(Opt.SET_META_CONTEXT, metaContextQuery())).isEqualTo(Rep.ERR_INVALID);
      assertThat(client.ask(Opt.STRUCTURED_REPLY, new byte[0])).isEqualTo(Rep.ACK);
      assertThat(client.ask(Opt.SET_META_CONTEXT, metaContextQuery())).isEqualTo(Rep.ACK);
    }
  }

  private static byte[] metaContextQuery() {
    byte[] query = Nbd.BASE_ALLOCATION.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    java.nio.ByteBuffer data = java.nio.ByteBuffer.allocate(4 + 4 + 4 + query.length);
    data.putInt(0).putInt(1).putInt(query.length).put(query);
    return data.array();
  }

  @Test
  void tlsOffRefusesStartTlsByPolicy() throws Exception {
    try (TestServer server = serve(TlsMode.OFF); Client client = new Client(server.port())) {
      assertThat(client.ask(Opt.STARTTLS, new byte[0])).isEqualTo(Rep.ERR_POLICY);
      assertThat(client.ask(Opt.GO, goDefaultExport())).isEqualTo(Rep.ACK);
    }
  }

  @Test
  void garbageInsteadOfAHandshakeDropsOnlyThatClient() throws Exception {
    try (TestServer server = serve(TlsMode.REQUIRE)) {
      try (Client client = new Client(server.port())) {
        assertThat(client.ask(Opt.STARTTLS, new byte[0])).isEqualTo(Rep.ACK);
        client.out.write(new byte[] {22, 3, 1, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0});
        client.out.flush();
        client.awaitClosedByServer();
      }
      try (Client client = new Client(server.port())) {
        client.startTls();
        assertThat(client.ask(Opt.GO, goDefaultExport())).isEqualTo(Rep.ACK);
      }
      assertThatThrownBy(() -> TlsPolicy.load(new TlsSettings(TlsMode.REQUIRE, dir.resolve("empty"), null, false, false)))
          .hasMessageContaining("--tls-certificates");
    }
  }

  /**
   * A clean end is a TLS end: after DISC, which has no reply, the client receives one more TLS
   * record, the close_notify alert, before the end of the stream; so it does when the server
   * stops. (The JDK's client takes a bare end of stream for close_notify, so the bytes are
   * counted.) Both TLS implementations: the JDK's, and Bouncy Castle's that serves
   * --tls-verify-peer and PSK, which would end a session whose input reached its end (as stopping
   * makes it) at once, without close_notify.
   */
  @Test
  void theServerSendsCloseNotifyAfterDiscAndWhenItStops() throws Exception {
    for (boolean verifyPeer : new boolean[] {false, true}) {
      try (TestServer server = serve(TlsMode.REQUIRE, verifyPeer)) {
        try (Client client = new Client(server.port())) {
          client.startTls(null, verifyPeer);
          assertThat(client.ask(Opt.GO, goDefaultExport())).isEqualTo(Rep.ACK);
          long before = client.plain.received.get();
          client.request(Nbd.Cmd.DISC);
          assertThat(client.in.read()).isEqualTo(-1);
          assertThat(client.plain.received.get() - before).as("bytes after DISC, verify-peer " + verifyPeer).isPositive();
        }
      }
      try (TestServer server = serve(TlsMode.REQUIRE, verifyPeer); Client client = new Client(server.port())) {
        client.startTls(null, verifyPeer);
        assertThat(client.ask(Opt.GO, goDefaultExport())).isEqualTo(Rep.ACK);
        long before = client.plain.received.get();
        server.server().close();
        assertThat(client.in.read()).isEqualTo(-1);
        assertThat(client.plain.received.get() - before).as("bytes after the server stopped, verify-peer " + verifyPeer)
            .isPositive();
      }
    }
  }

  /** Under --tls-verify-peer, clients of either TLS version with a certificate from the CA get in, others do not. */
  @Test
  void verifyPeerTakesClientCertificatesOverTls13AndTls12() throws Exception {
    try (TestServer server = serve(TlsMode.REQUIRE, true)) {
      for (String protocol : List.of("TLSv1.3", "TLSv1.2")) {
        try (Client client = new Client(server.port())) {
          assertThat(client.startTls(protocol, true).getProtocol()).isEqualTo(protocol);
          assertThat(client.ask(Opt.GO, goDefaultExport())).as(protocol).isEqualTo(Rep.ACK);
        }
        try (Client client = new Client(server.port())) {
          assertThatThrownBy(() -> {
            client.startTls(protocol, false);
            client.ask(Opt.GO, goDefaultExport());
          }).as(protocol + " without a client certificate").isInstanceOf(IOException.class);
        }
      }
    }
  }

  /**
   * A client that lists AES-256-GCM first, as GnuTLS and the JDK do, gets AES-128-GCM: the server
   * chooses, with and without --tls-verify-peer (two TLS libraries), over TLS 1.3 and 1.2. A client
   * that offers only AES-256-GCM still gets in.
   */
  @Test
  void theServerChoosesAes128GcmOverTheClientsFirstChoice() throws Exception {
    String[] aes256First = {
      "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
      "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    };
    for (boolean verifyPeer : new boolean[] {false, true}) {
      try (TestServer server = serve(TlsMode.REQUIRE, verifyPeer)) {
        for (String protocol : List.of("TLSv1.3", "TLSv1.2")) {
          String what = protocol + ", verify-peer " + verifyPeer;
          try (Client client = new Client(server.port())) {
            assertThat(client.startTls(protocol, verifyPeer, aes256First).getCipherSuite()).as(what).contains("AES_128_GCM");
            assertThat(client.ask(Opt.GO, goDefaultExport())).as(what).isEqualTo(Rep.ACK);
          }
          try (Client client = new Client(server.port())) {
            String[] onlyAes256 = {protocol.equals("TLSv1.3") ? aes256First[0] : aes256First[2]};
            assertThat(client.startTls(protocol, verifyPeer, onlyAes256).getCipherSuite()).as(what).isEqualTo(onlyAes256[0]);
          }
        }
      }
    }
  }
}
