package io.jnbd.server.tls;

import java.nio.file.Path;

/**
 * The TLS options of the command line, before any file is read.
 *
 * @param mode {@code --tls}; null when not given: then TLS is offered if credentials load, as in nbdkit
 * @param certificates {@code --tls-certificates}: the directory with ca-cert.pem, server-cert.pem,
 *     server-key.pem and optionally ca-crl.pem; null means nbdkit's default directories
 * @param pskFile {@code --tls-psk}: a file of {@code username:hexkey} lines (GnuTLS psktool's
 *     format); when given, PSK is used and certificates are not loaded, as in nbdkit
 * @param verifyPeer {@code --tls-verify-peer}: clients must present a certificate signed by the CA
 * @param sessionDebug {@code -D nbdkit.tls.session=1}: log each session's protocol, cipher suite
 *     and peer identity
 */
public record TlsSettings(TlsMode mode, Path certificates, Path pskFile, boolean verifyPeer, boolean sessionDebug) {
  public static final TlsSettings OFF = new TlsSettings(TlsMode.OFF, null, null, false, false);
}
