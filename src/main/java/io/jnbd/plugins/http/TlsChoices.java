package io.jnbd.plugins.http;

import io.jnbd.api.ConfigException;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import javax.net.ssl.SSLContext;

/**
 * nbdkit curl's TLS keys (ssl-version, ssl-cipher-list, tls13-ciphers) as JSSE protocol and
 * cipher-suite lists. curl takes OpenSSL's names; the JDK takes IANA's, so TLS 1.2 suites are
 * accepted under either (the OpenSSL name is derived from the IANA one by OpenSSL's naming
 * scheme). TLS 1.3 suites have the same names in both.
 */
final class TlsChoices {
  /** The JDK's TLS versions, newest first: ssl-version=tlsv1.X enables X and every newer one. */
  private static final List<String> PROTOCOLS = List.of("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1");
  /** OpenSSL cipher-string syntax that a plain list of suites cannot honour. */
  private static final String OPENSSL_OPERATORS = "!+-@";

  private List<String> protocols;
  private List<String> tls12Suites;
  private List<String> tls13Suites;
  /** Looked up at the first need, see {@link #jdk()}. */
  private JdkSuites jdk;

  /**
   * The JDK's cipher suites: the default ones, AES-128-GCM moved before AES-256-GCM (see {@link
   * #aes128GcmFirst}), and every supported one by IANA and OpenSSL name.
   */
  private record JdkSuites(List<String> defaults, Map<String, String> byName) {}

  /**
   * The JDK's suites, from its default TLS context, made on first use: making it loads and parses
   * the trust store, ~0.1 s of CPU on this project's machine, which an http:// URL needs only
   * after a redirect to https, and a start of the nbd or ssh plugin never (the catalog makes
   * every plugin listed before the one named, this one included).
   */
  private synchronized JdkSuites jdk() {
    if (jdk == null) {
      SSLContext context;
      try {
        context = SSLContext.getDefault();
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException("the JDK has no default TLS context", e);
      }
      Map<String, String> byName = new HashMap<>();
      for (String suite : context.getSupportedSSLParameters().getCipherSuites()) {
        byName.put(suite.toUpperCase(Locale.ROOT), suite);
        String openSsl = openSslName(suite);
        if (openSsl != null) {
          byName.putIfAbsent(openSsl, suite);
        }
      }
      jdk = new JdkSuites(aes128GcmFirst(context.getDefaultSSLParameters().getCipherSuites()), byName);
    }
    return jdk;
  }

  /**
   * ssl-version=: like curl, the oldest version allowed. SSL 2 and 3 are refused (neither the
   * JDK nor current curl speak them); TLS 1.0 and 1.1 are enabled but stay off unless the JDK's
   * security policy (jdk.tls.disabledAlgorithms) allows them.
   */
  void sslVersion(String what, String value) {
    String version = value.toLowerCase(Locale.ROOT);
    protocols = switch (version) {
      case "default" -> null;
      case "tlsv1", "tlsv1.0" -> PROTOCOLS;
      case "tlsv1.1" -> PROTOCOLS.subList(0, 3);
      case "tlsv1.2" -> PROTOCOLS.subList(0, 2);
      case "tlsv1.3" -> PROTOCOLS.subList(0, 1);
      case "sslv2", "sslv3" -> throw new ConfigException(what + ": " + value + " is not supported (the JDK speaks TLS 1.0 to 1.3)");
      default -> throw new ConfigException(what + ": expected default, tlsv1, tlsv1.0, tlsv1.1, tlsv1.2 or tlsv1.3, not '" + value + "'");
    };
  }

  /** ssl-cipher-list=: the TLS 1.2 and older suites to offer, by OpenSSL or IANA name. */
  void sslCipherList(String what, String value) {
    tls12Suites = suites(what, value, false);
  }

  /** tls13-ciphers=: the TLS 1.3 suites to offer. */
  void tls13Ciphers(String what, String value) {
    tls13Suites = suites(what, value, true);
  }

  /** The protocols to enable, or null for the JDK's defaults. */
  String[] protocols() {
    return protocols == null ? null : protocols.toArray(String[]::new);
  }

  /**
   * The suites to offer when neither ssl-cipher-list nor tls13-ciphers is given: the JDK's
   * defaults, with AES-128-GCM first.
   */
  String[] defaultCipherSuites() {
    return jdk().defaults().toArray(String[]::new);
  }

  /**
   * The suites given, or null when neither key is: a list given for one TLS generation replaces
   * the defaults of that generation only, as curl's two keys do.
   */
  String[] cipherSuites() {
    if (tls12Suites == null && tls13Suites == null) {
      return null;
    }
    List<String> chosen = new ArrayList<>();
    chosen.addAll(tls13Suites != null ? tls13Suites : defaultSuites(true));
    chosen.addAll(tls12Suites != null ? tls12Suites : defaultSuites(false));
    return chosen.toArray(String[]::new);
  }

  private List<String> defaultSuites(boolean tls13) {
    return jdk().defaults().stream().filter(suite -> isTls13(suite) == tls13).toList();
  }

  /**
   * {@code suites} with each AES-128-GCM suite just before its AES-256-GCM sibling (the JDK,
   * like OpenSSL, offers AES-256 first; browsers offer AES-128 first). Both are strong; AES-128
   * has 10 rounds to AES-256's 14, and a server that follows the client's order (nginx's
   * default) then picks it: a fresh server's first 256 MiB over HTTPS took ~10% less CPU.
   */
  static List<String> aes128GcmFirst(String[] suites) {
    List<String> all = Arrays.asList(suites);
    Set<String> ordered = new LinkedHashSet<>();
    for (String suite : suites) {
      String sibling = suite.replace("_AES_256_GCM_SHA384", "_AES_128_GCM_SHA256");
      if (!sibling.equals(suite) && all.contains(sibling)) {
        ordered.add(sibling);
      }
      ordered.add(suite);
    }
    return List.copyOf(ordered);
  }

  private List<String> suites(String what, String value, boolean tls13) {
    Set<String> chosen = new LinkedHashSet<>();
    for (String name : value.split("[:, ]+")) {
      if (name.isEmpty()) {
        continue;
      }
      if (OPENSSL_OPERATORS.indexOf(name.charAt(0)) >= 0 || name.equals(name.toUpperCase(Locale.ROOT)) && isKeyword(name)) {
        throw new ConfigException(what + ": '" + name + "' is OpenSSL cipher-string syntax, which jnbd does not expand;"
            + " list the cipher suites by name");
      }
      String suite = jdk().byName().get(name.toUpperCase(Locale.ROOT));
      if (suite == null) {
        throw new ConfigException(what + ": unknown or unsupported cipher suite '" + name + "'");
      }
      if (isTls13(suite) != tls13) {
        throw new ConfigException(what + ": " + name + (tls13 ? " is not a TLS 1.3 suite (use ssl-cipher-list)"
            : " is a TLS 1.3 suite (use tls13-ciphers)"));
      }
      chosen.add(suite);
    }
    if (chosen.isEmpty()) {
      throw new ConfigException(what + ": no cipher suites given");
    }
    return List.copyOf(chosen);
  }

  /** OpenSSL's group names (HIGH, DEFAULT, ECDHE, ...) that select suites rather than name one. */
  private static boolean isKeyword(String name) {
    return !name.contains("-") && !name.startsWith("TLS_");
  }

  private static boolean isTls13(String suite) {
    return suite.startsWith("TLS_") && !suite.contains("_WITH_");
  }

  /**
   * OpenSSL's name of a TLS 1.2-or-older suite (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 is
   * ECDHE-RSA-AES128-GCM-SHA256), or null for suites outside the scheme (TLS 1.3, signalling
   * suites, 3DES and the other legacy ciphers, which the JDK disables anyway).
   */
  static String openSslName(String suite) {
    int with = suite.indexOf("_WITH_");
    if (!suite.startsWith("TLS_") || with < 0) {
      return null;
    }
    String exchange = switch (suite.substring(4, with)) {
      case "RSA" -> "";
      case "ECDHE_ECDSA", "ECDHE_RSA", "DHE_RSA", "DHE_DSS", "ECDH_ECDSA", "ECDH_RSA" -> suite.substring(4, with).replace('_', '-') + "-";
      default -> null;
    };
    String rest = suite.substring(with + 6);
    String cipher;
    if (rest.equals("CHACHA20_POLY1305_SHA256")) {
      return exchange == null ? null : exchange + "CHACHA20-POLY1305";
    } else if (rest.startsWith("AES_128_GCM_") || rest.startsWith("AES_256_GCM_")) {
      cipher = "AES" + rest.substring(4, 7) + "-GCM-" + rest.substring(12);
    } else if (rest.startsWith("AES_128_CBC_") || rest.startsWith("AES_256_CBC_")) {
      cipher = "AES" + rest.substring(4, 7) + "-" + rest.substring(12);
    } else {
      return null;
    }
    return exchange == null ? null : exchange + cipher;
  }
}
