package io.jnbd.server.tls;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.Map;
import java.util.Vector;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.PRFAlgorithm;
import org.bouncycastle.tls.PSKTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.PskIdentity;
import org.bouncycastle.tls.SecurityParameters;
import org.bouncycastle.tls.TlsPSKExternal;
import org.bouncycastle.tls.TlsPSKIdentityManager;
import org.bouncycastle.tls.TlsServerProtocol;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * TLS with pre-shared keys, which the JDK's TLS lacks: Bouncy Castle's TLS API, TLS 1.3 external
 * PSKs with (EC)DHE as GnuTLS clients (libnbd, qemu) offer them, and TLS 1.2 (EC)DHE-PSK and PSK
 * suites for older clients. The crypto is the JDK's (JCA), which has hardware AES-GCM.
 */
final class PskHandshaker implements Handshaker {
  /**
   * TLS 1.3 suites whose hash is SHA-256 only: an external PSK is bound to one hash, SHA-256 for
   * GnuTLS, and a SHA-384 suite (GnuTLS's first choice) would fail the handshake. Then TLS 1.2
   * PSK suites.
   */
  static final int[] CIPHER_SUITES = {
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_DHE_PSK_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_PSK_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  };

  private final PskFile file;
  private final SecureRandom random = new SecureRandom();

  PskHandshaker(PskFile file) {
    this.file = file;
  }

  @Override
  public TlsChannel handshake(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early) throws IOException {
    TlsCrypto crypto = new JcaTlsCryptoProvider().create(random);
    Server server = new Server(crypto, file.read());
    TlsServerProtocol protocol = new TlsServerProtocol(new ChannelInput(in, early), new ChannelOutput(out));
    try {
      protocol.accept(server);
    } catch (IOException | RuntimeException e) {
      protocol.close();
      throw e;
    }
    SecurityParameters parameters = server.negotiated;
    String username = server.username;
    String description = parameters.getNegotiatedVersion() + " " + cipherSuiteName(parameters.getCipherSuite())
        + ", PSK, username " + username;
    return new PskChannel(protocol.getInputStream(), protocol.getOutputStream(), in, out, username, description);
  }

  /** Bouncy Castle names its suites only as constants. */
  static String cipherSuiteName(int suite) {
    for (java.lang.reflect.Field field : CipherSuite.class.getFields()) {
      try {
        if (field.getType() == int.class && field.getInt(null) == suite) {
          return field.getName();
        }
      } catch (IllegalAccessException e) {
        break;
      }
    }
    return "cipher suite 0x" + Integer.toHexString(suite);
  }

  @Override
  public String describe() {
    return "PSK from " + file.path();
  }

  /** One handshake's server; the keys are those of the file when the client connected. */
  private static final class Server extends PSKTlsServer {
    private final Map<String, byte[]> keys;
    private SecurityParameters negotiated;
    /** The identity whose key was handed out: the handshake succeeds only with that key. */
    private volatile String username;

    Server(TlsCrypto crypto, Map<String, byte[]> keys) {
      super(crypto, null);
      this.keys = keys;
      this.pskIdentityManager = new TlsPSKIdentityManager() {
        @Override
        public byte[] getHint() {
          return null;
        }

        @Override
        public byte[] getPSK(byte[] identity) {
          byte[] key = keyOf(identity);
          return key == null ? null : key.clone();
        }
      };
    }

    private byte[] keyOf(byte[] identity) {
      String name = new String(identity, StandardCharsets.UTF_8);
      byte[] key = keys.get(name);
      if (key != null) {
        username = name;
      }
      return key;
    }

    @Override
    public void notifyHandshakeComplete() throws IOException {
      super.notifyHandshakeComplete();
      negotiated = context.getSecurityParametersConnection();
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
      return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    @Override
    protected int[] getSupportedCipherSuites() {
      return TlsUtils.getSupportedCipherSuites(getCrypto(), CIPHER_SUITES);
    }

    @Override
    public TlsPSKExternal getExternalPSK(Vector identities) {
      for (Object offered : identities) {
        byte[] identity = ((PskIdentity) offered).getIdentity();
        byte[] key = keyOf(identity);
        if (key != null) {
          return new BasicTlsPSKExternal(identity, getCrypto().createSecret(key), PRFAlgorithm.tls13_hkdf_sha256);
        }
      }
      return null;
    }
  }

  /** Bytes read before the handshake began, then the channel; one reader thread. */
  static final class ChannelInput extends InputStream {
    private final ReadableByteChannel channel;
    private final ByteBuffer early;

    ChannelInput(ReadableByteChannel channel, ByteBuffer early) {
      this.channel = channel;
      this.early = early;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
      if (length == 0) {
        return 0;
      }
      if (early.hasRemaining()) {
        int n = Math.min(length, early.remaining());
        early.get(buffer, offset, n);
        return n;
      }
      return channel.read(ByteBuffer.wrap(buffer, offset, length));
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }

  static final class ChannelOutput extends OutputStream {
    private final WritableByteChannel channel;

    ChannelOutput(WritableByteChannel channel) {
      this.channel = channel;
    }

    @Override
    public void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] buffer, int offset, int length) throws IOException {
      ByteBuffer bytes = ByteBuffer.wrap(buffer, offset, length);
      while (bytes.hasRemaining()) {
        channel.write(bytes);
      }
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }
}
