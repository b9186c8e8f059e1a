package io.jnbd.server.tls;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Vector;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.BasicTlsPSKIdentity;
import org.bouncycastle.tls.PRFAlgorithm;
import org.bouncycastle.tls.PSKTlsClient;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.SecurityParameters;
import org.bouncycastle.tls.TlsClientProtocol;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * The client side of NBD's TLS, for the nbd plugin connecting to its upstream server, with
 * nbdkit's nbd plugin's settings (which are libnbd's): X.509 from a directory of ca-cert.pem
 * (the CA the server's certificate must chain to) and optionally client-cert.pem and
 * client-key.pem (a certificate to present), or pre-shared keys from a psktool file, of which
 * the key of one username is offered. The server's certificate and, over TCP, its host name are
 * checked unless verification is turned off. Settings are checked and certificates loaded once,
 * when the plugin is configured; a PSK file is read at each handshake, as the server reads its own.
 */
public final class ClientTls {
  public static final ClientTls OFF = new ClientTls(TlsMode.OFF, null, null, null, null);
  static final String CLIENT_CERTIFICATE = "client-cert.pem";
  static final String CLIENT_KEY = "client-key.pem";

  private final TlsMode mode;
  /** For X.509; null with PSK. */
  private final SSLContext context;
  private final boolean verify;
  private final PskFile pskFile;
  private final String username;
  private final SecureRandom random = new SecureRandom();

  private ClientTls(TlsMode mode, SSLContext context, Boolean verify, PskFile pskFile, String username) {
    this.mode = mode;
    this.context = context;
    this.verify = verify == null || verify;
    this.pskFile = pskFile;
    this.username = username;
  }

  /**
   * Settings as the nbd plugin's keys give them; each may be null when not given.
   *
   * @param mode off, on (TLS when the server offers it) or require; null means on when any
   *     other setting is given, else off
   * @param certificates the X.509 directory; null means libnbd's defaults ($HOME/.pki/libnbd,
   *     $HOME/.config/pki/libnbd, or /etc/pki/libnbd for root), else the JDK's trusted CAs
   * @param verify whether to check the server's certificate and host name (default true)
   * @param username the PSK identity (default: the login name)
   * @param psk the psktool file; when given, PSK is used instead of certificates
   */
  public static ClientTls configure(TlsMode mode, Path certificates, Boolean verify, String username, Path psk) {
    boolean anySetting = certificates != null || verify != null || username != null || psk != null;
    TlsMode chosen = mode != null ? mode : anySetting ? TlsMode.ON : TlsMode.OFF;
    if (chosen == TlsMode.OFF) {
      return OFF;
    }
    if (psk != null) {
      if (certificates != null) {
        throw new ConfigException("nbd: tls-psk and tls-certificates cannot be used together");
      }
      PskFile file = new PskFile(psk);
      String identity = username != null ? username : System.getProperty("user.name");
      try {
        keyOf(file, identity);
      } catch (IOException e) {
        throw new ConfigException("nbd: tls-psk: " + e.getMessage());
      }
      return new ClientTls(chosen, null, verify, file, identity);
    }
    return new ClientTls(chosen, x509Context(certificateDirectory(certificates), verify == null || verify), verify,
        null, null);
  }

  public TlsMode mode() {
    return mode;
  }

  /** What is offered, for messages: "x509" or "PSK as USER". */
  public String describe() {
    return pskFile != null ? "PSK as " + username : "x509";
  }

  private static Path certificateDirectory(Path given) {
    if (given != null) {
      if (!Files.isDirectory(given)) {
        throw new ConfigException("nbd: tls-certificates: " + given + " is not a directory");
      }
      return given;
    }
    List<Path> defaults = new ArrayList<>();
    if ("root".equals(System.getProperty("user.name"))) {
      defaults.add(Path.of("/etc/pki/libnbd"));
    } else {
      String home = System.getProperty("user.home");
      defaults.add(Path.of(home, ".pki", "libnbd"));
      defaults.add(Path.of(home, ".config", "pki", "libnbd"));
    }
    return defaults.stream().filter(Files::isDirectory).findFirst().orElse(null);
  }

  /** A context that trusts the directory's CA (else the JDK's CAs) and presents its client certificate if it has one. */
  private static SSLContext x509Context(Path directory, boolean verify) {
    String setting = "nbd: tls-certificates";
    try {
      KeyManager[] keyManagers = null;
      TrustManager[] trustManagers = verify ? null : new TrustManager[] {new TrustingAnything()};
      if (directory != null) {
        Path certificate = directory.resolve(CLIENT_CERTIFICATE);
        Path key = directory.resolve(CLIENT_KEY);
        if (Files.isRegularFile(certificate) && Files.isRegularFile(key)) {
          keyManagers = X509Handshaker.keyManagers(X509Handshaker.privateKey(key, setting),
              X509Handshaker.certificates(certificate, setting));
        }
        Path ca = directory.resolve(X509Handshaker.CA_CERTIFICATE);
        if (verify && Files.isRegularFile(ca)) {
          TrustManagerFactory factory = TrustManagerFactory.getInstance("PKIX");
          factory.init(X509Handshaker.trustStore(X509Handshaker.certificates(ca, setting)));
          trustManagers = factory.getTrustManagers();
        }
      }
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(keyManagers, trustManagers, null);
      return context;
    } catch (IOException | GeneralSecurityException e) {
      throw new ConfigException(setting + ": " + e.getMessage());
    }
  }

  /**
   * Runs the client's side of the handshake on a connection whose STARTTLS was just acknowledged.
   *
   * @param host the server's host name or address, checked against its certificate; null over a
   *     Unix socket, where only the certificate's chain is checked
   */
  public TlsChannel handshake(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early, String host, int port)
      throws IOException {
    if (pskFile != null) {
      return pskHandshake(in, out, early);
    }
    SSLEngine engine = host == null ? context.createSSLEngine() : context.createSSLEngine(host, port);
    engine.setUseClientMode(true);
    SSLParameters parameters = engine.getSSLParameters();
    parameters.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
    if (verify && host != null) {
      parameters.setEndpointIdentificationAlgorithm("HTTPS");
    }
    engine.setSSLParameters(parameters);
    return EngineChannel.handshake(engine, in, out, early);
  }

  private TlsChannel pskHandshake(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early) throws IOException {
    TlsCrypto crypto = new JcaTlsCryptoProvider().create(random);
    PskClient client = new PskClient(crypto, username, keyOf(pskFile, username));
    BcChannel.ChannelInput channelInput = new BcChannel.ChannelInput(in, early);
    TlsClientProtocol protocol = new TlsClientProtocol(channelInput, new BcChannel.ChannelOutput(out));
    try {
      protocol.connect(client);
    } catch (TlsFatalAlertReceived e) {
      protocol.close();
      if (e.getAlertDescription() == AlertDescription.decrypt_error) {
        // The server could not verify what the key signed: its key for this username differs.
        throw new IOException("the server refused the key of '" + username + "' (" + e.getMessage() + ")", e);
      }
      throw e;
    } catch (IOException | RuntimeException e) {
      protocol.close();
      throw e;
    }
    SecurityParameters negotiated = client.getContext().getSecurityParametersConnection();
    String description = negotiated.getNegotiatedVersion() + " "
        + BcChannel.cipherSuiteName(negotiated.getCipherSuite()) + ", PSK, username " + username;
    return new BcChannel(protocol, channelInput, in, out, username, description);
  }

  private static byte[] keyOf(PskFile file, String username) throws IOException {
    Map<String, byte[]> keys = file.read();
    byte[] key = keys.get(username);
    if (key == null) {
      throw new IOException(file.path() + " has no key for the username '" + username + "' (set tls-username=)");
    }
    return key;
  }

  /** Offers one identity: as a TLS 1.3 external PSK (with (EC)DHE), and to TLS 1.2 PSK suites. */
  private static final class PskClient extends PSKTlsClient {
    private final byte[] identity;
    private final byte[] key;

    PskClient(TlsCrypto crypto, String username, byte[] key) {
      super(crypto, new BasicTlsPSKIdentity(username, key));
      this.identity = username.getBytes(java.nio.charset.StandardCharsets.UTF_8);
      this.key = key;
    }

    org.bouncycastle.tls.TlsClientContext getContext() {
      return context;
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
      return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    @Override
    protected int[] getSupportedCipherSuites() {
      return TlsUtils.getSupportedCipherSuites(getCrypto(), PskHandshaker.CIPHER_SUITES);
    }

    @Override
    public Vector getExternalPSKs() {
      Vector<Object> psks = new Vector<>();
      psks.add(new BasicTlsPSKExternal(identity, getCrypto().createSecret(key), PRFAlgorithm.tls13_hkdf_sha256));
      return psks;
    }
  }

  /** tls-verify=false: any certificate the server presents is taken, as libnbd does then. */
  private static final class TrustingAnything extends X509ExtendedTrustManager {
    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) {}

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) {}

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) {}

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) {}

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) {}

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) {}

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return new X509Certificate[0];
    }
  }
}
