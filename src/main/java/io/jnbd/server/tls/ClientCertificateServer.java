package io.jnbd.server.tls;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPrivateKey;
import java.util.List;
import java.util.Vector;
import javax.net.ssl.X509TrustManager;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CertificateEntry;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.ClientCertificateType;
import org.bouncycastle.tls.DefaultTlsServer;
import org.bouncycastle.tls.HashAlgorithm;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.SecurityParameters;
import org.bouncycastle.tls.SignatureAlgorithm;
import org.bouncycastle.tls.SignatureAndHashAlgorithm;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCertificate;
import org.bouncycastle.tls.crypto.TlsCryptoParameters;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaDefaultTlsCredentialedSigner;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCrypto;

/**
 * One handshake's server under --tls-verify-peer, with Bouncy Castle's TLS API rather than the
 * JDK's: the JDK's TLS 1.3 certificate request names the RSA PKCS#1 signatures only in
 * signature_algorithms_cert, which GnuTLS 3.7 ignores, so GnuTLS clients whose certificate a CA
 * signed that way (certtool's and openssl's default) sent none. This request names them in
 * signature_algorithms too, as GnuTLS servers (nbdkit) do, and TLS 1.3 works with those clients;
 * TLS 1.2 remains for older ones. Client certificates are checked by the JDK's PKIX trust manager
 * (the CA file, and the CRL when there is one).
 */
final class ClientCertificateServer extends DefaultTlsServer implements BcChannel.NegotiatingServer {
  private static final int[] TLS13_SUITES = {
    CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
  };
  private static final int[] RSA_SUITES = {
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, CipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
  };
  private static final int[] ECDSA_SUITES = {
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
  };

  private final JcaTlsCrypto crypto;
  private final PrivateKey key;
  private final TlsCertificate[] chain;
  private final X509TrustManager trust;
  private SecurityParameters negotiated;
  private String peer;

  ClientCertificateServer(JcaTlsCrypto crypto, PrivateKey key, List<X509Certificate> chain, X509TrustManager trust)
      throws IOException {
    super(crypto);
    this.crypto = crypto;
    this.key = key;
    this.chain = new TlsCertificate[chain.size()];
    for (int i = 0; i < chain.size(); i++) {
      try {
        this.chain[i] = crypto.createCertificate(chain.get(i).getEncoded());
      } catch (GeneralSecurityException e) {
        throw new IOException("the server certificate cannot be encoded", e);
      }
    }
    this.trust = trust;
  }

  private boolean isEcKey() {
    return key instanceof ECPrivateKey;
  }

  @Override
  protected ProtocolVersion[] getSupportedVersions() {
    return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
  }

  /** Ours lists AES-128-GCM before AES-256-GCM, which GnuTLS clients list first (X509Handshaker#aes128GcmFirst says why). */
  @Override
  protected boolean preferLocalCipherSuites() {
    return true;
  }

  @Override
  protected int[] getSupportedCipherSuites() {
    int[] tls12 = isEcKey() ? ECDSA_SUITES : RSA_SUITES;
    int[] all = new int[TLS13_SUITES.length + tls12.length];
    System.arraycopy(TLS13_SUITES, 0, all, 0, TLS13_SUITES.length);
    System.arraycopy(tls12, 0, all, TLS13_SUITES.length, tls12.length);
    return TlsUtils.getSupportedCipherSuites(getCrypto(), all);
  }

  @Override
  public TlsCredentials getCredentials() throws IOException {
    boolean tls13 = TlsUtils.isTLSv13(context);
    Vector<?> offered = context.getSecurityParametersHandshake().getClientSigAlgs();
    for (Object each : offered == null ? TlsUtils.getDefaultSupportedSignatureAlgorithms(context) : offered) {
      SignatureAndHashAlgorithm algorithm = (SignatureAndHashAlgorithm) each;
      if (signsWithOurKey(algorithm, tls13)) {
        Certificate certificate = tls13 ? new Certificate(TlsUtils.EMPTY_BYTES, entries()) : new Certificate(chain);
        return new JcaDefaultTlsCredentialedSigner(new TlsCryptoParameters(context), crypto, key, certificate, algorithm);
      }
    }
    throw new TlsFatalAlert(AlertDescription.handshake_failure, "no signature algorithm of the client fits the server key");
  }

  private CertificateEntry[] entries() {
    CertificateEntry[] entries = new CertificateEntry[chain.length];
    for (int i = 0; i < chain.length; i++) {
      entries[i] = new CertificateEntry(chain[i], null);
    }
    return entries;
  }

  /** TLS 1.3 signs with RSA-PSS only, and binds an ECDSA hash to the key's curve. */
  private boolean signsWithOurKey(SignatureAndHashAlgorithm algorithm, boolean tls13) {
    short signature = algorithm.getSignature();
    if (isEcKey()) {
      if (signature != SignatureAlgorithm.ecdsa) {
        return false;
      }
      return !tls13 || algorithm.getHash() == switch (((ECPrivateKey) key).getParams().getCurve().getField().getFieldSize()) {
        case 256 -> HashAlgorithm.sha256;
        case 384 -> HashAlgorithm.sha384;
        default -> HashAlgorithm.sha512;
      };
    }
    boolean pss = signature == SignatureAlgorithm.rsa_pss_rsae_sha256 || signature == SignatureAlgorithm.rsa_pss_rsae_sha384
        || signature == SignatureAlgorithm.rsa_pss_rsae_sha512;
    return pss || (!tls13 && signature == SignatureAlgorithm.rsa);
  }

  @Override
  public CertificateRequest getCertificateRequest() throws IOException {
    Vector<?> algorithms = TlsUtils.getDefaultSupportedSignatureAlgorithms(context);
    if (TlsUtils.isTLSv13(context)) {
      return new CertificateRequest(TlsUtils.EMPTY_BYTES, algorithms, null, null);
    }
    return new CertificateRequest(new short[] {ClientCertificateType.rsa_sign, ClientCertificateType.ecdsa_sign},
        algorithms, null);
  }

  @Override
  public void notifyClientCertificate(Certificate clientCertificate) throws IOException {
    if (clientCertificate == null || clientCertificate.isEmpty()) {
      throw new TlsFatalAlert(TlsUtils.isTLSv13(context) ? AlertDescription.certificate_required
          : AlertDescription.handshake_failure, "the client sent no certificate");
    }
    X509Certificate[] certificates = new X509Certificate[clientCertificate.getLength()];
    try {
      CertificateFactory factory = CertificateFactory.getInstance("X.509");
      for (int i = 0; i < certificates.length; i++) {
        byte[] encoded = clientCertificate.getCertificateAt(i).getEncoded();
        certificates[i] = (X509Certificate) factory.generateCertificate(new ByteArrayInputStream(encoded));
      }
      trust.checkClientTrusted(certificates, certificates[0].getPublicKey().getAlgorithm());
    } catch (GeneralSecurityException e) {
      throw new TlsFatalAlert(AlertDescription.bad_certificate, "client certificate refused: " + e.getMessage(), e);
    }
    peer = "x509, client certificate " + certificates[0].getSubjectX500Principal().getName();
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
    return peer;
  }

  @Override
  public String username() {
    return null;
  }
}
