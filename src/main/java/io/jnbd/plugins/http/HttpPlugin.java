package io.jnbd.plugins.http;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Secrets;
import io.jnbd.api.Support;
import io.jnbd.api.ThreadModel;
import io.jnbd.api.Values;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.random.RandomGenerator;

/**
 * Serves a remote disk image over HTTP(S) as a read-only export: every NBD read becomes one HTTP
 * Range GET. Accepts nbdkit curl plugin command lines (see {@link CurlPlugin}).
 *
 * <p>All NBD connections share one {@link RangeClient}, and so one pool of HTTP connections and
 * one cached size; it lives from {@link #configComplete()} to {@link #unload()}.
 */
public class HttpPlugin implements Plugin {
  /**
   * Every read costs an HTTP round trip, so fewer, larger reads win: nbdcopy raises its request
   * size to this, and copied 3x faster at 1 MiB than at 64 KiB against a 20 ms origin (see
   * docs/plugins/http.md). Small random reads are unaffected: minimum stays 1.
   */
  static final int PREFERRED_BLOCK_SIZE = 1 << 20;
  /**
   * Measured with nbdcopy against an origin answering in 20 ms (docs/plugins/http.md): a
   * latency-bound copy scales almost linearly with connections; 8 doubles nbdkit's 4 without
   * loading the server with more parallel GETs than qemu-img's 8 coroutines would send anyway.
   */
  static final int DEFAULT_CONNECTIONS = 8;
  /**
   * How long a request is retried while the origin is unavailable, without timeout=: enough for a
   * web server to restart or a load balancer to fail over, short enough that a dead origin fails
   * a copy within a minute.
   */
  static final Duration DEFAULT_RETRY_DEADLINE = Duration.ofSeconds(30);

  /** Names and meanings follow nbdkit's curl plugin, so that its command lines work unchanged. */
  static final List<Parameter> PARAMETERS = List.of(
      new Parameter("url", "URL", "The http:// or https:// URL of the disk image (required; the magic key)."),
      new Parameter("user", "USER", "User name for HTTP Basic authentication, sent preemptively to the URL's host."),
      new Parameter("password", "PASSWORD", "Password for user: literal, '-' to read it from the terminal or stdin, '+FILE' from FILE, '-FD' from file descriptor FD.", true),
      new Parameter("cookie", "COOKIE", "Cookie header value sent with every request: literal, '-', '+FILE' or '-FD' as for password.", true),
      new Parameter("cookiefile", "FILE", "Keep cookies the server sets and send them back; read initial cookies from FILE"
          + " (Netscape format or Set-Cookie lines). An empty value turns the cookie engine on without a file."),
      new Parameter("cookiejar", "FILE", "Keep cookies the server sets and send them back, and write them all to FILE"
          + " (Netscape format) when the server exits."),
      new Parameter("cookie-script", "SCRIPT", "Shell script whose stdout is the cookie; run at start, on 401/403, and every cookie-script-renew seconds."),
      new Parameter("cookie-script-renew", "SECS", "Re-run cookie-script every SECS seconds in the background (default: only on 401/403)."),
      new Parameter("header", "'NAME: VALUE'", "Extra request header; may be repeated."),
      new Parameter("header-script", "SCRIPT", "Shell script printing extra headers, one 'Name: value' per line; run like cookie-script."),
      new Parameter("header-script-renew", "SECS", "Re-run header-script every SECS seconds in the background (default: only on 401/403)."),
      new Parameter("sslverify", "true|false", "Verify the server's certificate and host name (default true)."),
      new Parameter("cainfo", "FILE", "PEM file of CA certificates to trust instead of the JDK's defaults."),
      new Parameter("capath", "DIR", "Directory of PEM CA certificates to trust instead of the JDK's defaults."),
      new Parameter("ssl-version", "VERSION", "Oldest TLS version allowed: default, tlsv1, tlsv1.0, tlsv1.1, tlsv1.2 or tlsv1.3"
          + " (TLS 1.0 and 1.1 stay off unless the JDK's security policy allows them)."),
      new Parameter("ssl-cipher-list", "C1:C2:...", "TLS 1.2 and older cipher suites to offer, by OpenSSL or IANA name"
          + " (default: the JDK's, AES-128-GCM before AES-256-GCM)."),
      new Parameter("tls13-ciphers", "C1:C2:...", "TLS 1.3 cipher suites to offer, e.g. TLS_AES_128_GCM_SHA256"
          + " (default: the JDK's, AES-128-GCM before AES-256-GCM)."),
      new Parameter("http-version", "VERSION", "none, 1.1, or a preference for HTTP/2 or 3 that curl would let fall back"
          + " (2, 2.0, 2TLS, 3): all speak HTTP/1.1; 1.0, 2-prior-knowledge and 3only are refused."),
      new Parameter("ipresolve", "any|v4|v6", "Which addresses of the host name to connect to (default any)."),
      new Parameter("resolve", "HOST:PORT:ADDRESS[,ADDRESS...]", "Connect to ADDRESS for HOST instead of asking DNS,"
          + " as curl's --resolve; PORT must be the URL's. May be repeated."),
      new Parameter("proxy", "URL", "HTTP proxy to use, e.g. http://proxy:3128 (default: none)."),
      new Parameter("proxy-user", "USER", "User name for the proxy."),
      new Parameter("proxy-password", "PASSWORD", "Password for the proxy: literal, '-', '+FILE' or '-FD' as for password.", true),
      new Parameter("timeout", "SECS", "Per-request time limit, and how long a request is retried while the origin is unavailable;"
          + " see the docs (default: no limit, retries for " + DEFAULT_RETRY_DEADLINE.toSeconds() + " s)."),
      new Parameter("connect-timeout", "SECS", "Time limit for establishing a connection, TLS included (default 300)."),
      new Parameter("followlocation", "true|false", "Follow redirects (default true)."),
      new Parameter("user-agent", "STRING", "User-Agent header (default: the HTTP client's own)."),
      new Parameter("protocols", "LIST", "Comma-separated schemes allowed for the URL and redirects: http, https (default both)."),
      new Parameter("tcp-keepalive", "true|false", "Enable TCP keep-alive probes (default false)."),
      new Parameter("tcp-nodelay", "true|false", "Disable Nagle's algorithm (default true)."),
      new Parameter("unix-socket-path", "PATH", "Connect to this Unix domain socket instead of the URL's host and port."),
      new Parameter("connections", "N", "Size of the HTTP connection pool shared by all NBD connections (default "
          + DEFAULT_CONNECTIONS + ")."));

  private String url;
  private String user;
  private String password;
  private String cookie;
  /** cookiefile= was given (an empty value turns the engine on without a file). */
  private boolean cookieEngine;
  private Path cookieFile;
  private Path cookieJar;
  private String cookieScript;
  private Duration cookieScriptRenew;
  private final List<String> headers = new ArrayList<>();
  private String headerScript;
  private Duration headerScriptRenew;
  private boolean sslVerify = true;
  private Path caInfo;
  private Path caPath;
  private final TlsChoices tls = new TlsChoices();
  private HostResolution.Family ipResolve = HostResolution.Family.ANY;
  private final List<String> resolve = new ArrayList<>();
  private URI proxy;
  private String proxyUser;
  private String proxyPassword;
  private Duration timeout;
  private Duration connectTimeout = Duration.ofSeconds(300);
  private boolean followLocation = true;
  private String userAgent;
  private Set<String> protocols = Set.of("http", "https");
  private boolean tcpKeepAlive;
  private boolean tcpNoDelay = true;
  private Path unixSocketPath;
  private int connections = DEFAULT_CONNECTIONS;

  private HttpSettings settings;
  private final RetryPolicy.Pacer retryPacer;
  private final RandomGenerator retryJitter;
  private RangeClient client;

  public HttpPlugin() {
    this(RetryPolicy.Pacer.SYSTEM, new Random());
  }

  /** With the time and randomness retries use given: tests run outages through it without waiting. */
  HttpPlugin(RetryPolicy.Pacer retryPacer, RandomGenerator retryJitter) {
    this.retryPacer = retryPacer;
    this.retryJitter = retryJitter;
  }

  @Override
  public String name() {
    return "http";
  }

  @Override
  public String description() {
    return "serve a remote disk image over HTTP(S) with range requests (read-only)";
  }

  @Override
  public String magicConfigKey() {
    return "url";
  }

  @Override
  public List<Parameter> parameters() {
    return PARAMETERS;
  }

  @Override
  public boolean config(String key, String value) {
    String what = name() + ": " + key;
    switch (key) {
      case "url" -> url = value;
      case "user" -> user = value;
      case "password" -> password = Secrets.read(what, value);
      case "cookie" -> cookie = Secrets.read(what, value);
      case "cookiefile" -> {
        cookieEngine = true;
        cookieFile = value.isEmpty() ? null : existing(what, value);
      }
      case "cookiejar" -> {
        cookieEngine = true;
        cookieJar = Path.of(value);
      }
      case "cookie-script" -> cookieScript = value;
      case "cookie-script-renew" -> cookieScriptRenew = seconds(what, value, 1);
      case "header" -> {
        if (value.indexOf(':') <= 0) {
          throw new ConfigException(what + ": expected 'Name: value'");
        }
        headers.add(value);
      }
      case "header-script" -> headerScript = value;
      case "header-script-renew" -> headerScriptRenew = seconds(what, value, 1);
      case "sslverify" -> sslVerify = Values.parseBool(what, value);
      case "cainfo" -> caInfo = existing(what, value);
      case "capath" -> caPath = existing(what, value);
      case "ssl-version" -> tls.sslVersion(what, value);
      case "ssl-cipher-list" -> tls.sslCipherList(what, value);
      case "tls13-ciphers" -> tls.tls13Ciphers(what, value);
      case "http-version" -> httpVersion(what, value);
      case "ipresolve" -> ipResolve = HostResolution.family(what, value);
      case "resolve" -> resolve.add(value);
      case "proxy" -> proxy = proxyUri(what, value);
      case "proxy-user" -> proxyUser = value;
      case "proxy-password" -> proxyPassword = Secrets.read(what, value);
      case "timeout" -> timeout = seconds(what, value, 1);
      case "connect-timeout" -> connectTimeout = seconds(what, value, 1);
      case "followlocation" -> followLocation = Values.parseBool(what, value);
      case "user-agent" -> userAgent = value;
      case "protocols" -> protocols = protocols(what, value);
      case "tcp-keepalive" -> tcpKeepAlive = Values.parseBool(what, value);
      case "tcp-nodelay" -> tcpNoDelay = Values.parseBool(what, value);
      case "unix-socket-path" -> unixSocketPath = Path.of(value);
      case "connections" -> connections = Values.parseInt(what, value, 1, 1024);
      default -> throw new ConfigException(name() + ": unknown parameter '" + key + "'");
    }
    return true;
  }

  @Override
  public void configComplete() {
    settings = new HttpSettings(name(), url, user, password, cookie, cookieEngine, cookieFile, cookieJar, cookieScript,
        cookieScriptRenew, headers, headerScript, headerScriptRenew, sslVerify, caInfo, caPath, tls, ipResolve, resolve,
        proxy, proxyUser, proxyPassword, timeout, connectTimeout, followLocation, userAgent, protocols, tcpKeepAlive,
        tcpNoDelay, unixSocketPath, connections);
    try {
      client = new ApacheRangeClient(settings, new RetryPolicy(settings.retryDeadline(), retryPacer, retryJitter));
    } catch (IOException e) {
      throw new ConfigException(name() + ": " + e.getMessage(), e);
    }
  }

  /** The configuration, once complete; for tests. */
  HttpSettings settings() {
    return settings;
  }

  @Override
  public ThreadModel threadModel() {
    return ThreadModel.PARALLEL;
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    long size = client.size();
    RangeClient shared = client;
    return new Export() {
      @Override
      public long size() {
        return size;
      }

      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        shared.read(buffer, offset);
      }

      // Reads that meet a changed image fail rather than return its bytes, so every connection
      // sees the same image.
      @Override
      public boolean canMultiConn() {
        return true;
      }

      @Override
      public Support canCache() {
        return Support.NONE;
      }

      @Override
      public BlockSize blockSize() {
        return new BlockSize(1, PREFERRED_BLOCK_SIZE, BlockSize.DEFAULT.maximum());
      }
    };
  }

  @Override
  public void unload() {
    if (client != null) {
      client.close();
    }
  }

  /**
   * The JDK's HTTP/1.1 is what a request that prefers HTTP/2 or 3 gets from curl too when the
   * server does not offer them; only the versions curl would insist on are refused.
   */
  private static void httpVersion(String what, String value) {
    switch (value) {
      case "none", "1.1", "2", "2.0", "2TLS", "3" -> { }
      case "1.0", "2-prior-knowledge", "3only" -> throw new ConfigException(what + ": " + value
          + " is not supported: the http plugin speaks HTTP/1.1 only");
      default -> throw new ConfigException(what + ": expected none, 1.0, 1.1, 2, 2.0, 2TLS, 2-prior-knowledge, 3 or 3only,"
          + " not '" + value + "'");
    }
  }

  private static Duration seconds(String what, String value, int min) {
    return Duration.ofSeconds(Values.parseInt(what, value, min, Integer.MAX_VALUE));
  }

  private static Path existing(String what, String value) {
    Path path = Path.of(value);
    if (!Files.exists(path)) {
      throw new ConfigException(what + ": no such file or directory: " + value);
    }
    return path;
  }

  private static URI proxyUri(String what, String value) {
    String text = value.contains("://") ? value : "http://" + value;
    URI uri;
    try {
      uri = URI.create(text);
    } catch (IllegalArgumentException e) {
      // The JDK's message quotes the whole URL, password included.
      throw new ConfigException(what + ": not a valid URL: " + Redaction.url(text));
    }
    if (!"http".equalsIgnoreCase(uri.getScheme()) || uri.getHost() == null) {
      throw new ConfigException(what + ": expected http://HOST[:PORT]");
    }
    return uri;
  }

  private static Set<String> protocols(String what, String value) {
    Set<String> chosen = new LinkedHashSet<>();
    for (String protocol : value.toLowerCase(Locale.ROOT).split(",")) {
      String p = protocol.trim();
      if (!p.equals("http") && !p.equals("https")) {
        throw new ConfigException(what + ": unsupported protocol '" + p + "' (only http and https)");
      }
      chosen.add(p);
    }
    return Set.copyOf(chosen);
  }
}
