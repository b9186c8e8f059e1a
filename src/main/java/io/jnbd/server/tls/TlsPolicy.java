package io.jnbd.server.tls;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the server does with NBD_OPT_STARTTLS: refuse it (OFF), allow it (ON) or demand it before
 * anything else (REQUIRE), and with which credentials. Made once at start-up from the options, as
 * nbdkit does: {@code --tls-psk} wins over certificates; without {@code --tls}, TLS is offered
 * when credentials load and off otherwise; {@code --tls=on} without credentials warns and turns
 * TLS off, {@code --tls=require} without them is an error.
 */
public final class TlsPolicy {
  private static final Logger log = LoggerFactory.getLogger(TlsPolicy.class);

  public static final TlsPolicy OFF = new TlsPolicy(TlsMode.OFF, null, false);

  private final TlsMode mode;
  private final Handshaker handshaker;
  private final boolean sessionDebug;

  private TlsPolicy(TlsMode mode, Handshaker handshaker, boolean sessionDebug) {
    this.mode = mode;
    this.handshaker = handshaker;
    this.sessionDebug = sessionDebug;
  }

  /** Loads the credentials the settings name; throws ConfigException for files that cannot serve. */
  public static TlsPolicy load(TlsSettings settings) {
    if (settings.mode() == TlsMode.OFF) {
      return OFF;
    }
    Handshaker handshaker;
    if (settings.pskFile() != null) {
      PskFile file = new PskFile(settings.pskFile());
      file.check();
      handshaker = new PskHandshaker(file);
    } else {
      handshaker = X509Handshaker.load(certificateDirectories(settings.certificates()), settings.verifyPeer());
    }
    if (handshaker == null) {
      String hint = "set --tls-certificates=DIR (with " + X509Handshaker.SERVER_CERTIFICATE + " and "
          + X509Handshaker.SERVER_KEY + ") or --tls-psk=FILE; see docs/tls.md";
      if (settings.mode() == TlsMode.REQUIRE) {
        throw new ConfigException("--tls=require but could not load TLS certificates: " + hint);
      }
      if (settings.mode() == TlsMode.ON) {
        log.warn("--tls=on but could not load TLS certificates: TLS is disabled and TLS connections will be rejected; {}",
            hint);
      }
      return OFF;
    }
    TlsMode mode = settings.mode() == null ? TlsMode.ON : settings.mode();
    log.debug("TLS {}: {}", mode.name().toLowerCase(java.util.Locale.ROOT), handshaker.describe());
    return new TlsPolicy(mode, handshaker, settings.sessionDebug());
  }

  /**
   * Where certificates are looked for: the given directory alone, else nbdkit's defaults
   * ($HOME/.pki/nbdkit, then $HOME/.config/pki/nbdkit; /etc/pki/nbdkit for root).
   */
  static List<Path> certificateDirectories(Path given) {
    if (given != null) {
      if (!Files.isDirectory(given)) {
        throw new ConfigException("--tls-certificates: " + given + " is not a directory");
      }
      return List.of(given);
    }
    List<Path> defaults = new ArrayList<>();
    if (isRoot()) {
      defaults.add(Path.of("/etc/pki/nbdkit"));
    } else {
      String home = System.getProperty("user.home");
      defaults.add(Path.of(home, ".pki", "nbdkit"));
      defaults.add(Path.of(home, ".config", "pki", "nbdkit"));
    }
    return defaults;
  }

  private static boolean isRoot() {
    return "root".equals(System.getProperty("user.name"));
  }

  public TlsMode mode() {
    return mode;
  }

  /**
   * Runs the handshake on a connection that has just acknowledged STARTTLS.
   *
   * @param early bytes the client sent after STARTTLS that were already read from {@code in}
   */
  public TlsChannel upgrade(ReadableByteChannel in, WritableByteChannel out, ByteBuffer early, String peer)
      throws IOException {
    TlsChannel channel = handshaker.handshake(in, out, early);
    if (sessionDebug) {
      log.debug("{}: TLS session: {}", peer, channel.describeSession());
    }
    return channel;
  }
}
