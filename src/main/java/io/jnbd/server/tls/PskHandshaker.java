package io.jnbd.server.tls;

import java.io.IOException;
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
    Server server = new Server(new JcaTlsCryptoProvider().create(random), file.read());
    return BcChannel.accept(server, in, out, early);
  }

  @Override
  public String describe() {
    return "PSK from " + file.path();
  }

  /** One handshake's server; the keys are those of the file when the client connected. */
  private static final class Server extends PSKTlsServer implements BcChannel.NegotiatingServer {
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
    public SecurityParameters negotiated() {
      return negotiated;
    }

    @Override
    public String peer() {
      return "PSK, username " + username;
    }

    @Override
    public String username() {
      return username;
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
      return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    /** Our order decides, AES-128-GCM first, whatever the client's (X509Handshaker#aes128GcmFirst says why). */
    @Override
    protected boolean preferLocalCipherSuites() {
      return true;
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
}
