package io.jnbd.plugins.http;

import io.jnbd.api.ConfigException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The http plugin's configuration, checked once all keys are in. The keys, their defaults and
 * their help are in {@link HttpPlugin}; null means a key was not given.
 *
 * @param plugin the plugin's name (http or curl), for messages
 * @param url the image's URL, which may hold a user and password
 * @param user the user for HTTP Basic authentication
 * @param password the password, already read from where password= said
 * @param cookie the Cookie header sent with every request
 * @param cookieEngine keep the cookies the server sets (cookiefile= or cookiejar= given)
 * @param cookieFile the cookies to start with
 * @param cookieJar where the cookies are written at exit
 * @param cookieScript the script whose output is the cookie
 * @param cookieScriptRenew how often cookieScript runs again; null for only on 401/403
 * @param headers extra request headers, each 'Name: value'
 * @param headerScript the script printing extra headers
 * @param headerScriptRenew how often headerScript runs again; null for only on 401/403
 * @param sslVerify verify the server's certificate and host name
 * @param caInfo a PEM file of CA certificates to trust instead of the JDK's
 * @param caPath a directory of PEM CA certificates to trust instead of the JDK's
 * @param tls the TLS versions and cipher suites to offer
 * @param ipResolve which of the host's addresses to connect to
 * @param resolve HOST:PORT:ADDRESS entries that replace DNS
 * @param proxy the HTTP proxy
 * @param proxyUser the proxy's user
 * @param proxyPassword the proxy's password
 * @param timeout the per-request time limit, and how long a request is retried; null for none
 * @param connectTimeout the time limit for establishing a connection
 * @param followLocation follow redirects
 * @param userAgent the User-Agent header; null for the HTTP client's own
 * @param protocols the schemes allowed for the URL and redirects
 * @param tcpKeepAlive enable TCP keep-alive probes
 * @param tcpNoDelay disable Nagle's algorithm
 * @param unixSocketPath a Unix socket to connect to instead of the URL's host
 * @param connections the size of the HTTP connection pool
 */
record HttpSettings(
    String plugin,
    String url,
    String user,
    String password,
    String cookie,
    boolean cookieEngine,
    Path cookieFile,
    Path cookieJar,
    String cookieScript,
    Duration cookieScriptRenew,
    List<String> headers,
    String headerScript,
    Duration headerScriptRenew,
    boolean sslVerify,
    Path caInfo,
    Path caPath,
    TlsChoices tls,
    HostResolution.Family ipResolve,
    List<String> resolve,
    URI proxy,
    String proxyUser,
    String proxyPassword,
    Duration timeout,
    Duration connectTimeout,
    boolean followLocation,
    String userAgent,
    Set<String> protocols,
    boolean tcpKeepAlive,
    boolean tcpNoDelay,
    Path unixSocketPath,
    int connections) {

  /** Checks what single keys cannot: the URL is there, and usable. */
  HttpSettings {
    headers = List.copyOf(headers);
    resolve = List.copyOf(resolve);
    if (url == null) {
      throw new ConfigException(plugin + ": url is required");
    }
    URI uri;
    try {
      uri = new URI(url);
    } catch (java.net.URISyntaxException e) {
      throw new ConfigException(plugin + ": url: not a valid URL: " + Redaction.url(url));
    }
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    if (!scheme.equals("http") && !scheme.equals("https") || uri.getHost() == null) {
      throw new ConfigException(plugin + ": url: expected an http:// or https:// URL: " + Redaction.url(url));
    }
    if (!protocols.contains(scheme)) {
      throw new ConfigException(plugin + ": url: scheme " + scheme + " is not in protocols=" + String.join(",", protocols));
    }
    if (password != null && user == null && uri.getUserInfo() == null) {
      throw new ConfigException(plugin + ": password given without user");
    }
    if (proxyPassword != null && proxyUser == null) {
      throw new ConfigException(plugin + ": proxy-password given without proxy-user");
    }
    if (cookie != null && cookieScript != null) {
      throw new ConfigException(plugin + ": cookie and cookie-script cannot both be given");
    }
    if (cookieJar != null && (cookieJar.getParent() != null && !Files.isDirectory(cookieJar.getParent()) || Files.isDirectory(cookieJar))) {
      throw new ConfigException(plugin + ": cookiejar: cannot write a file at " + cookieJar);
    }
  }

  /**
   * How long after its first attempt a request may still be retried: timeout= when given, the
   * time the user lets one read take anyway.
   */
  Duration retryDeadline() {
    return timeout != null ? timeout : HttpPlugin.DEFAULT_RETRY_DEADLINE;
  }

  /** Without the password, the cookie and the URL's credentials, so that a log line that prints the settings leaks none. */
  @Override
  public String toString() {
    return "HttpSettings[" + Redaction.url(url) + ", " + connections + " connections"
        + (proxy == null ? "" : ", proxy " + Redaction.url(proxy.toString())) + "]";
  }
}
