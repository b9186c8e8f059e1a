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
import java.security.PrivateKey;
import java.security.cert.CRL;
import java.security.cert.CertStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.X509CertSelector;
import java.util.Collection;
import java.util.List;
import javax.net.ssl.CertPathTrustManagerParameters;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManagerFactory;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;

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

  private final SSLContext context;
  private final Path directory;
  private final boolean verifyPeer;

  private X509Handshaker(SSLContext context, Path directory, boolean verifyPeer) {
    this.context = context;
    this.directory = directory;
    this.verifyPeer = verifyPeer;
  }

  /**
   * The first directory that has a server certificate and key, loaded; null when none has.
   * Files that are there but unreadable or malformed are an error, not a reason to look further.
   */
  static X509Handshaker load(List<Path> directories, boolean verifyPeer) {
    for (Path directory : directories) {
      if (Files.isRegularFile(directory.resolve(SERVER_CERTIFICATE)) && Files.isRegularFile(directory.resolve(SERVER_KEY))) {
        return new X509Handshaker(context(directory, verifyPeer), directory, verifyPeer);
      }
    }
    return null;
  }

  private static SSLContext context(Path directory, boolean verifyPeer) {
    try {
      List<Certificate> chain = certificates(directory.resolve(SERVER_CERTIFICATE));
      PrivateKey key = privateKey(directory.resolve(SERVER_KEY));
      KeyStore keys = KeyStore.getInstance("PKCS12");
      keys.load(null, null);
      keys.setKeyEntry("server", key, IN_MEMORY_PASSWORD, chain.toArray(Certificate[]::new));
      KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      keyManagers.init(keys, IN_MEMORY_PASSWORD);
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(keyManagers.getKeyManagers(), verifyPeer ? trustManagers(directory).getTrustManagers() : null, null);
      return context;
    } catch (IOException | GeneralSecurityException e) {
      throw new ConfigException("--tls-certificates: " + e.getMessage());
    }
  }

  private static TrustManagerFactory trustManagers(Path directory) throws IOException, GeneralSecurityException {
    Path caFile = directory.resolve(CA_CERTIFICATE);
    if (!Files.isRegularFile(caFile)) {
      throw new ConfigException("--tls-verify-peer: " + caFile + " is missing: it names the CA that signs client certificates");
    }
    KeyStore trusted = KeyStore.getInstance("PKCS12");
    trusted.load(null, null);
    int i = 0;
    for (Certificate certificate : certificates(caFile)) {
      trusted.setCertificateEntry("ca" + i++, certificate);
    }
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

  private static List<Certificate> certificates(Path file) throws IOException, GeneralSecurityException {
    return certificates(file, "--tls-certificates");
  }

  /** The certificates in a PEM file; {@code setting} names where it came from in errors. */
  static List<Certificate> certificates(Path file, String setting) throws IOException, GeneralSecurityException {
    try (InputStream in = Files.newInputStream(file)) {
      List<Certificate> certificates = List.copyOf(CertificateFactory.getInstance("X.509").generateCertificates(in));
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
    SSLEngine engine = context.createSSLEngine();
    engine.setUseClientMode(false);
    // The NBD protocol asks for TLS 1.2 at least, 1.3 preferably. But the JDK's TLS 1.3
    // certificate request leaves out the RSA PKCS#1 signatures (kept for a separate
    // signature_algorithms_cert that GnuTLS 3.7 ignores), so GnuTLS clients send no certificate
    // when theirs is signed that way, as certtool signs them: client certificates need TLS 1.2.
    engine.setEnabledProtocols(verifyPeer ? new String[] {"TLSv1.2"} : new String[] {"TLSv1.3", "TLSv1.2"});
    engine.setNeedClientAuth(verifyPeer);
    return EngineChannel.handshake(engine, in, out, early);
  }

  @Override
  public String describe() {
    return "x509 certificates from " + directory + (verifyPeer ? ", client certificates verified" : "");
  }
}
