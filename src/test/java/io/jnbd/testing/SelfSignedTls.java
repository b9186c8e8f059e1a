package io.jnbd.testing;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.List;
import java.util.Map;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with the JDK's keytool, as a
 * server SSLContext plus the certificate in PEM (which a client can trust as its own CA).
 */
public final class SelfSignedTls {
  private static final String PASSWORD = "changeit";
  private final Path keyStore;
  private final Path pem;

  public SelfSignedTls(Path directory) {
    keyStore = directory.resolve("origin.p12");
    pem = directory.resolve("origin.pem");
    String keytool = Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
    Tools.run(List.of(keytool, "-genkeypair", "-alias", "origin", "-keyalg", "EC", "-groupname", "secp256r1",
        "-dname", "CN=localhost", "-ext", "san=ip:127.0.0.1,dns:localhost", "-validity", "2",
        "-keystore", keyStore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD, "-keypass", PASSWORD),
        Map.of(), 60).assertSuccess();
    Tools.run(List.of(keytool, "-exportcert", "-rfc", "-alias", "origin", "-keystore", keyStore.toString(),
        "-storepass", PASSWORD, "-file", pem.toString()), Map.of(), 60).assertSuccess();
  }

  /** The certificate in PEM form. */
  public Path pem() {
    return pem;
  }

  public SSLContext serverContext() {
    try (InputStream in = Files.newInputStream(keyStore)) {
      KeyStore store = KeyStore.getInstance("PKCS12");
      store.load(in, PASSWORD.toCharArray());
      KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      keys.init(store, PASSWORD.toCharArray());
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(keys.getKeyManagers(), null, null);
      return context;
    } catch (Exception e) {
      throw new IllegalStateException("cannot load the test key store", e);
    }
  }
}
