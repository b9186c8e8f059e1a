package io.jnbd.plugins.http;

import java.net.URI;
import java.util.regex.Pattern;

/** Makes URLs safe to log: no user-info, and query values whose names suggest a secret hidden. */
final class Redaction {
  private static final Pattern SECRET_NAME =
      Pattern.compile("(?i).*(pass|pwd|secret|token|key|sig|auth|session|cookie|credential|ticket|x-amz-).*");

  private Redaction() {}

  static String url(String url) {
    URI uri;
    try {
      uri = URI.create(url);
    } catch (IllegalArgumentException e) {
      return "<unparseable URL>";
    }
    StringBuilder out = new StringBuilder();
    if (uri.getScheme() != null) {
      out.append(uri.getScheme()).append("://");
    }
    if (uri.getHost() != null) {
      out.append(uri.getHost());
    }
    if (uri.getPort() >= 0) {
      out.append(':').append(uri.getPort());
    }
    if (uri.getRawPath() != null) {
      out.append(uri.getRawPath());
    }
    String query = uri.getRawQuery();
    if (query != null) {
      out.append('?');
      String separator = "";
      for (String pair : query.split("&")) {
        int equals = pair.indexOf('=');
        String name = equals < 0 ? pair : pair.substring(0, equals);
        out.append(separator).append(name);
        if (equals >= 0) {
          out.append('=').append(SECRET_NAME.matcher(name).matches() ? "***" : pair.substring(equals + 1));
        }
        separator = "&";
      }
    }
    return out.toString();
  }
}
