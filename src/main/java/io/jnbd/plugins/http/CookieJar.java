package io.jnbd.plugins.http;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.hc.client5.http.cookie.BasicCookieStore;
import org.apache.hc.client5.http.cookie.Cookie;
import org.apache.hc.client5.http.cookie.CookieOrigin;
import org.apache.hc.client5.http.cookie.CookieStore;
import org.apache.hc.client5.http.cookie.MalformedCookieException;
import org.apache.hc.client5.http.impl.cookie.BasicClientCookie;
import org.apache.hc.client5.http.impl.cookie.RFC6265CookieSpecFactory;
import org.apache.hc.core5.http.message.BasicHeader;

/**
 * curl's cookie engine, as nbdkit's cookiefile= and cookiejar= turn it on: cookies the server
 * sets are kept and sent back; a cookie file is read at start and the jar written at unload, in
 * the Netscape format curl and wget use. A cookie file may also hold {@code Set-Cookie:} header
 * lines, which curl accepts too; they are taken as set by the URL's host.
 */
final class CookieJar {
  private static final String HTTP_ONLY_PREFIX = "#HttpOnly_";

  private CookieJar() {}

  /** A store holding the cookies of {@code file} (none when null). */
  static CookieStore load(String what, Path file, URI url) {
    BasicCookieStore store = new BasicCookieStore();
    if (file == null) {
      return store;
    }
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new ConfigException(what + ": cannot read " + file + ": " + e.getMessage(), e);
    }
    int number = 0;
    for (String line : lines) {
      number++;
      try {
        if (line.regionMatches(true, 0, "Set-Cookie:", 0, 11)) {
          store.addCookies(fromHeader(line, url).toArray(Cookie[]::new));
        } else if (!line.isBlank() && (!line.startsWith("#") || line.startsWith(HTTP_ONLY_PREFIX))) {
          store.addCookie(fromNetscapeLine(line));
        }
      } catch (IllegalArgumentException | MalformedCookieException e) {
        throw new ConfigException(what + ": " + file + " line " + number + ": " + e.getMessage());
      }
    }
    return store;
  }

  /** Writes every unexpired cookie of {@code store} to {@code file} (replacing it). */
  static void save(CookieStore store, Path file) throws IOException {
    StringBuilder text = new StringBuilder("# Netscape HTTP Cookie File\n# Written by jnbd's http plugin.\n\n");
    Instant now = Instant.now();
    for (Cookie cookie : store.getCookies()) {
      if (cookie.isExpired(now)) {
        continue;
      }
      Instant expiry = cookie.getExpiryInstant();
      text.append(cookie.isHttpOnly() ? HTTP_ONLY_PREFIX : "")
          .append(cookie.containsAttribute(Cookie.DOMAIN_ATTR) ? "." : "").append(cookie.getDomain()).append('\t')
          .append(cookie.containsAttribute(Cookie.DOMAIN_ATTR) ? "TRUE" : "FALSE").append('\t')
          .append(cookie.getPath() == null ? "/" : cookie.getPath()).append('\t')
          .append(cookie.isSecure() ? "TRUE" : "FALSE").append('\t')
          .append(expiry == null ? 0 : expiry.getEpochSecond()).append('\t')
          .append(cookie.getName()).append('\t')
          .append(cookie.getValue() == null ? "" : cookie.getValue()).append('\n');
    }
    Files.writeString(file, text, StandardCharsets.UTF_8);
  }

  /** DOMAIN, INCLUDE-SUBDOMAINS, PATH, SECURE, EXPIRES (0: a session cookie), NAME, VALUE. */
  private static Cookie fromNetscapeLine(String line) {
    boolean httpOnly = line.startsWith(HTTP_ONLY_PREFIX);
    String[] fields = (httpOnly ? line.substring(HTTP_ONLY_PREFIX.length()) : line).split("\t", -1);
    if (fields.length != 7) {
      throw new IllegalArgumentException("expected 7 tab-separated fields (Netscape cookie format), found " + fields.length);
    }
    String domain = fields[0].startsWith(".") ? fields[0].substring(1) : fields[0];
    BasicClientCookie cookie = new BasicClientCookie(fields[5], fields[6]);
    cookie.setDomain(domain.toLowerCase(Locale.ROOT));
    if (bool(fields[1])) {
      cookie.setAttribute(Cookie.DOMAIN_ATTR, domain);
    }
    cookie.setPath(fields[2].isEmpty() ? "/" : fields[2]);
    cookie.setAttribute(Cookie.PATH_ATTR, cookie.getPath());
    cookie.setSecure(bool(fields[3]));
    cookie.setHttpOnly(httpOnly);
    long expires = Long.parseLong(fields[4].strip());
    if (expires > 0) {
      cookie.setExpiryDate(Instant.ofEpochSecond(expires));
    }
    return cookie;
  }

  private static List<Cookie> fromHeader(String line, URI url) throws MalformedCookieException {
    int port = url.getPort() >= 0 ? url.getPort() : "https".equalsIgnoreCase(url.getScheme()) ? 443 : 80;
    CookieOrigin origin = new CookieOrigin(url.getHost(), port, url.getRawPath() == null || url.getRawPath().isEmpty()
        ? "/" : url.getRawPath(), "https".equalsIgnoreCase(url.getScheme()));
    List<Cookie> cookies = new ArrayList<>(new RFC6265CookieSpecFactory().create(null)
        .parse(new BasicHeader("Set-Cookie", line.substring(11).strip()), origin));
    return cookies;
  }

  private static boolean bool(String field) {
    return field.equalsIgnoreCase("TRUE");
  }
}
