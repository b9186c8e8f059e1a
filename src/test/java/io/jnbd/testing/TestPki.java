package io.jnbd.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.util.io.pem.PemObject;

/**
 * Certificates and keys for TLS tests, made with Bouncy Castle in the layout nbdkit, libnbd and
 * qemu read: a directory with ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem and
 * client-key.pem (the server's for localhost and 127.0.0.1), and PSK files in psktool's format.
 */
public final class TestPki {
  private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());

  private TestPki() {}

  /** A fresh CA in {@code directory} with a server and a client certificate it signed. */
  public static Path certificates(Path directory, String caName) {
    return certificates(directory, caName, "localhost", InetAddress.getLoopbackAddress().getHostAddress());
  }

  /**
   * As {@link #certificates(Path, String)}, with the server certificate made out to these names
   * (an IPv4 or IPv6 literal becomes an address entry).
   */
  public static Path certificates(Path directory, String caName, String... serverNames) {
    try {
      Files.createDirectories(directory);
      KeyPair ca = keyPair();
      X500Name caSubject = new X500Name("CN=" + caName);
      X509Certificate caCert = sign(caSubject, ca, caSubject, ca, true, null, serverNames);
      KeyPair server = keyPair();
      X509Certificate serverCert = sign(new X500Name("CN=" + serverNames[0] + ",O=jnbd tests"), server, caSubject, ca,
          false, KeyPurposeId.id_kp_serverAuth, serverNames);
      KeyPair client = keyPair();
      X509Certificate clientCert = sign(new X500Name("CN=client,O=jnbd tests"), client, caSubject, ca, false,
          KeyPurposeId.id_kp_clientAuth, serverNames);
      pem(directory.resolve("ca-cert.pem"), caCert);
      pem(directory.resolve("server-cert.pem"), serverCert);
      pem(directory.resolve("server-key.pem"), pkcs8(server));
      pem(directory.resolve("client-cert.pem"), clientCert);
      pem(directory.resolve("client-key.pem"), pkcs8(client));
      return directory;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException | OperatorCreationException e) {
      throw new IllegalStateException("cannot make test certificates", e);
    }
  }

  /** Trust managers that trust the ca-cert.pem of a {@link #certificates} directory, as a client's. */
  public static TrustManager[] trusting(Path pki) throws IOException, GeneralSecurityException {
    KeyStore trusted = KeyStore.getInstance("PKCS12");
    trusted.load(null, null);
    try (InputStream ca = Files.newInputStream(pki.resolve("ca-cert.pem"))) {
      trusted.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(ca));
    }
    TrustManagerFactory trust = TrustManagerFactory.getInstance("PKIX");
    trust.init(trusted);
    return trust.getTrustManagers();
  }

  /** A psktool file with one line, {@code username:key} in hex; returns its path. */
  public static Path pskFile(Path file, String username, byte[] key) {
    try {
      Files.createDirectories(file.getParent());
      Files.writeString(file, username + ":" + HexFormat.of().formatHex(key) + "\n");
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** RSA: GnuTLS cannot read the JDK's EC keys, whose PKCS#8 encoding leaves out the public key. */
  private static KeyPair keyPair() throws GeneralSecurityException {
    KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
    generator.initialize(2048);
    return generator.generateKeyPair();
  }

  private static X509Certificate sign(X500Name subject, KeyPair subjectKeys, X500Name issuer, KeyPair issuerKeys,
      boolean ca, KeyPurposeId purpose, String... serverNames)
      throws IOException, GeneralSecurityException, OperatorCreationException {
    Instant now = Instant.now();
    X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer, BigInteger.valueOf(SERIAL.incrementAndGet()),
        Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(2))), subject,
        subjectKeys.getPublic());
    builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(ca));
    if (ca) {
      builder.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
    } else {
      builder.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
      builder.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(purpose));
      if (purpose == KeyPurposeId.id_kp_serverAuth) {
        GeneralName[] names = new GeneralName[serverNames.length];
        for (int i = 0; i < names.length; i++) {
          boolean address = serverNames[i].matches("[0-9.]+|.*:.*");
          names[i] = new GeneralName(address ? GeneralName.iPAddress : GeneralName.dNSName, serverNames[i]);
        }
        builder.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names));
      }
    }
    return new JcaX509CertificateConverter().getCertificate(
        builder.build(new JcaContentSignerBuilder("SHA256withRSA").build(issuerKeys.getPrivate())));
  }

  /** Unencrypted PKCS#8, as openssl genpkey and certtool --pkcs8 write keys. */
  private static PemObject pkcs8(KeyPair keys) {
    return new PemObject("PRIVATE KEY", keys.getPrivate().getEncoded());
  }

  private static void pem(Path file, Object object) throws IOException {
    try (Writer out = Files.newBufferedWriter(file, StandardCharsets.US_ASCII); JcaPEMWriter pem = new JcaPEMWriter(out)) {
      pem.writeObject(object);
    }
  }
}
