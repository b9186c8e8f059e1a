package io.jnbd.server.tls;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.NoSuchAlgorithmException;
import java.security.Provider;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.CRL;
import java.security.cert.CertStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.X509CertSelector;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.function.ToIntFunction;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.PBEParameterSpec;
import javax.net.ssl.CertPathTrustManagerParameters;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.jcajce.util.DefaultJcaJceHelper;
import org.bouncycastle.jcajce.util.JcaJceHelper;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCrypto;

/**
 * X.509 certificates from a directory laid out as nbdkit's: server-cert.pem (the server's
 * certificate, optionally followed by its chain), server-key.pem (PKCS#1, SEC1 or unencrypted
 * PKCS#8, as certtool and openssl write them), ca-cert.pem (the CA that client certificates must
 * chain to under --tls-verify-peer) and optionally ca-crl.pem (certificates it revoked).
 */
final class X509Handshaker implements Handshaker {
  static final String CA_CERTIFICATE = "ca-cert.pem";
  static final String SERVER_CERTIFICATE = "server-cert.pem";
  static final String SERVER_KEY = "server-key.pem";
  static final String CA_CRL = "ca-crl.pem";
  private static final char[] IN_MEMORY_PASSWORD = new char[0];
  private static final String AES_128_GCM = "AES_128_GCM_SHA256";
  private static final String AES_256_GCM = "AES_256_GCM_SHA384";

  private final Path directory;
  private final PrivateKey key;
  private final List<X509Certificate> chain;
  /** Without --tls-verify-peer: the JDK's TLS, and its engines' settings, made once. */
  private final SSLContext context;
  private final SSLParameters engineParameters;
  /** With it: the CA's judge of client certificates, for Bouncy Castle's TLS (ClientCertificateServer says why). */
  private final X509TrustManager clientTrust;
  private final SecureRandom random = new SecureRandom();
  /** For Bouncy Castle's TLS, with verify-peer: see {@link JdkFirstHelper}. */
  private final JcaJceHelper bcHelper;

  private X509Handshaker(Path directory, boolean verifyPeer) {
    this.directory = directory;
    try {
      this.chain = certificates(directory.resolve(SERVER_CERTIFICATE));
      this.key = privateKey(directory.resolve(SERVER_KEY));
      if (verifyPeer) {
        this.context = null;
        this.engineParameters = null;
        this.bcHelper = new JdkFirstHelper();
        this.clientTrust = (X509TrustManager) trustManagers(directory).getTrustManagers()[0];
      } else {
        this.context = context(key, chain);
        this.engineParameters = engineParameters(context);
        this.bcHelper = null;
        this.clientTrust = null;
      }
    } catch (IOException | GeneralSecurityException e) {
      throw new ConfigException("--tls-certificates: " + e.getMessage());
    }
  }

  /**
   * The first directory that has a server certificate and key, loaded; null when none has.
   * Files that are there but unreadable or malformed are an error, not a reason to look further.
   */
  static X509Handshaker load(List<Path> directories, boolean verifyPeer) {
    for (Path directory : directories) {
      if (Files.isRegularFile(directory.resolve(SERVER_CERTIFICATE)) && Files.isRegularFile(directory.resolve(SERVER_KEY))) {
        return new X509Handshaker(directory, verifyPeer);
      }
    }
    return null;
  }

  private static SSLContext context(PrivateKey key, List<X509Certificate> chain) throws IOException, GeneralSecurityException {
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(keyManagers(key, chain), null, null);
    return context;
  }

  /**
   * The JDK's key manager for one key and its certificate chain. It takes them only from a key
   * store, where a PKCS#12 store encrypts the key with 10,000 rounds of PBKDF2 when it is put in
   * and again when the manager takes it out: ~0.1 s of a fresh server's CPU at C1 for a store
   * that never leaves memory, and whose password is this empty constant. One round does.
   */
  static KeyManager[] keyManagers(PrivateKey key, List<? extends Certificate> chain) throws IOException, GeneralSecurityException {
    KeyStore keys = KeyStore.getInstance("PKCS12");
    keys.load(null, null);
    byte[] salt = new byte[16];
    byte[] iv = new byte[16];
    keys.setEntry("key", new KeyStore.PrivateKeyEntry(key, chain.toArray(Certificate[]::new)),
        new KeyStore.PasswordProtection(IN_MEMORY_PASSWORD, "PBEWithHmacSHA256AndAES_128",
            new PBEParameterSpec(salt, 1, new IvParameterSpec(iv))));
    KeyManagerFactory factory = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    factory.init(keys, IN_MEMORY_PASSWORD);
    return factory.getKeyManagers();
  }

  /** An in-memory key store that trusts these CA certificates, for a PKIX trust manager. */
  static KeyStore trustStore(List<? extends Certificate> cas) throws IOException, GeneralSecurityException {
    KeyStore trusted = KeyStore.getInstance("PKCS12");
    trusted.load(null, null);
    int i = 0;
    for (Certificate certificate : cas) {
      trusted.setCertificateEntry("ca" + i++, certificate);
    }
    return trusted;
  }

  private static TrustManagerFactory trustManagers(Path directory) throws IOException, GeneralSecurityException {
    Path caFile = directory.resolve(CA_CERTIFICATE);
    if (!Files.isRegularFile(caFile)) {
      throw new ConfigException("--tls-verify-peer: " + caFile + " is missing: it names the CA that signs client certificates");
    }
    KeyStore trusted = trustStore(certificates(caFile));
    TrustManagerFactory factory = TrustManagerFactory.getInstance("PKIX");
    Path crlFile = directory.resolve(CA_CRL);
    if (Files.isRegularFile(crlFile)) {
      PKIXBuilderParameters parameters = new PKIXBuilderParameters(trusted, new X509CertSelector());
      parameters.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(crls(crlFile))));
      parameters.setRevocationEnabled(true);
      factory.init(new CertPathTrustManagerParameters(parameters));
    } else {
      factory.init(trusted);
    }
    return factory;
  }

  private static List<X509Certificate> certificates(Path file) throws IOException, GeneralSecurityException {
    return certificates(file, "--tls-certificates");
  }

  /** The certificates in a PEM file; {@code setting} names where it came from in errors. */
  static List<X509Certificate> certificates(Path file, String setting) throws IOException, GeneralSecurityException {
    try (InputStream in = Files.newInputStream(file)) {
      List<X509Certificate> certificates = CertificateFactory.getInstance("X.509").generateCertificates(in).stream()
          .map(X509Certificate.class::cast).toList();
      if (certificates.isEmpty()) {
        throw new ConfigException(setting + ": " + file + " holds no certificate");
      }
      return certificates;
    }
  }

  private static Collection<? extends CRL> crls(Path file) throws IOException, GeneralSecurityException {
    try (InputStream in = Files.newInputStream(file)) {
      return CertificateFactory.getInstance("X.509").generateCRLs(in);
    }
  }

  private static PrivateKey privateKey(Path file) throws IOException {
    return privateKey(file, "--tls-certificates");
  }

  /** The unencrypted private key in a PEM file; {@code setting} names where it came from in errors. */
  static PrivateKey privateKey(Path file, String setting) throws IOException {
    try (Reader reader = Files.newBufferedReader(file, StandardCharsets.US_ASCII); PEMParser parser = new PEMParser(reader)) {
      Object pem = parser.readObject();
      PrivateKeyInfo info = switch (pem) {
        case PEMKeyPair pair -> pair.getPrivateKeyInfo();
        case PrivateKeyInfo plain -> plain;
        case null -> throw new ConfigException(setting + ": " + file + " holds no PEM private key");
        default -> throw new ConfigException(setting + ": " + file
            + " is not an unencrypted private key (encrypted keys are not supported)");
      };
      return new JcaPEMKeyConverter().getPrivateKey(info);
    }
  }

  @Override
  public TlsChannel handshake(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early) throws IOException {
    if (clientTrust != null) {
      JcaTlsCrypto crypto = new JcaTlsCrypto(bcHelper, random, random) {};
      return BcChannel.accept(new ClientCertificateServer(crypto, key, chain, clientTrust), in, out, early);
    }
    SSLEngine engine = context.createSSLEngine();
    engine.setUseClientMode(false);
    engine.setSSLParameters(engineParameters);
    return EngineChannel.handshake(engine, in, out, early);
  }

  /** Shared by every connection's engine, which copies them; never changed after this. */
  private static SSLParameters engineParameters(SSLContext context) {
    SSLParameters parameters = context.getDefaultSSLParameters();
    // The NBD protocol asks for TLS 1.2 at least, 1.3 preferably.
    parameters.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
    parameters.setCipherSuites(aes128GcmFirst(parameters.getCipherSuites()));
    parameters.setUseCipherSuitesOrder(true);
    return parameters;
  }

  /**
   * The cipher suites in the same order but for each AES-128-GCM suite, which goes just before its
   * AES-256-GCM twin. The JDK lists AES-256 first and GnuTLS clients (libnbd, qemu) offer it first,
   * but AES-128 (TLS 1.3's mandatory suite) takes 10 rounds instead of 14, on both ends: the JDK
   * encrypts 16 KiB records about a fifth faster with it (docs/tls.md).
   */
  static String[] aes128GcmFirst(String[] suites) {
    List<String> order = List.of(suites);
    ToIntFunction<String> rank = suite -> {
      int twin = order.indexOf(suite.replace(AES_128_GCM, AES_256_GCM));
      return twin >= 0 ? twin : order.indexOf(suite);
    };
    return order.stream()
        .sorted(Comparator.comparingInt(rank).thenComparing(suite -> !suite.contains(AES_128_GCM)))
        .toArray(String[]::new);
  }

  @Override
  public String describe() {
    return "x509 certificates from " + directory + (clientTrust != null ? ", client certificates verified" : "");
  }

  /**
   * The JDK's providers for Bouncy Castle's TLS (hardware AES-GCM), and Bouncy Castle's own for
   * the signature names the JDK does not know: its TLS asks for RSA-PSS as "SHA256WITHRSASSA-PSS".
   */
  private static final class JdkFirstHelper extends DefaultJcaJceHelper {
    private final Provider fallback = new BouncyCastleProvider();

    @Override
    public Signature createSignature(String algorithm) throws NoSuchAlgorithmException {
      try {
        return super.createSignature(algorithm);
      } catch (NoSuchAlgorithmException e) {
        return Signature.getInstance(algorithm, fallback);
      }
    }
  }
}
