package io.jnbd.plugins.http;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import io.jnbd.plugins.http.RetryPolicy.TransientFailure;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.apache.hc.client5.http.ConnectTimeoutException;
import org.apache.hc.client5.http.HttpRequestRetryStrategy;
import org.apache.hc.client5.http.auth.AuthScope;
import org.apache.hc.client5.http.auth.UsernamePasswordCredentials;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpHead;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.config.ConnectionConfig;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.cookie.CookieStore;
import org.apache.hc.client5.http.impl.DefaultRedirectStrategy;
import org.apache.hc.client5.http.impl.auth.BasicAuthCache;
import org.apache.hc.client5.http.impl.auth.BasicCredentialsProvider;
import org.apache.hc.client5.http.impl.auth.BasicScheme;
import org.apache.hc.client5.http.impl.classic.CloseableHttpClient;
import org.apache.hc.client5.http.impl.classic.HttpClientBuilder;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.client5.http.ssl.DefaultClientTlsStrategy;
import org.apache.hc.client5.http.ssl.HostnameVerificationPolicy;
import org.apache.hc.client5.http.ssl.HttpsSupport;
import org.apache.hc.client5.http.ssl.NoopHostnameVerifier;
import org.apache.hc.client5.http.ssl.TlsSocketStrategy;
import org.apache.hc.client5.http.ssl.TrustAllStrategy;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.EntityDetails;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.HttpResponse;
import org.apache.hc.core5.http.NoHttpResponseException;
import org.apache.hc.core5.http.ProtocolException;
import org.apache.hc.core5.http.TruncatedChunkException;
import org.apache.hc.core5.http.io.SocketConfig;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.io.CloseMode;
import org.apache.hc.core5.reactor.ssl.SSLBufferMode;
import org.apache.hc.core5.ssl.SSLContextBuilder;
import org.apache.hc.core5.ssl.SSLContexts;
import org.apache.hc.core5.util.TimeValue;
import org.apache.hc.core5.util.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link RangeClient} on Apache HttpClient 5 (classic, blocking API), called from the server's
 * virtual threads. One client and one pool of keep-alive HTTP/1.1 connections serve every NBD
 * connection: {@code connections=N} is the pool size, and a request holds a pooled connection
 * only while it sends its GET and reads the body.
 *
 * <p>Every ranged reply is checked before any byte counts: status 206, a Content-Range equal to
 * the range asked for, the {@link ImageVersion} seen at open, and a body of exactly that length.
 * Anything else fails the request with EIO and the connection is discarded rather than returned
 * to the pool. Requests that meet an unavailable origin are repeated by a {@link RetryPolicy}.
 */
final class ApacheRangeClient implements RangeClient {
  private static final Logger log = LoggerFactory.getLogger(ApacheRangeClient.class);
  private static final String HTTP_CLIENT_LOG_LEVEL = "org.slf4j.simpleLogger.log.org.apache.hc";

  static {
    // HttpClient logs request headers (Cookie, Authorization) and raw bytes at debug level, and
    // --verbose turns debug on everywhere: keep its loggers at info unless set explicitly. This
    // runs before HttpClient's classes create their loggers.
    if (System.getProperty(HTTP_CLIENT_LOG_LEVEL) == null) {
      System.setProperty(HTTP_CLIENT_LOG_LEVEL, "info");
    }
  }
  private static final Pattern CONTENT_RANGE = Pattern.compile("bytes\\s+(\\d+)-(\\d+)/(\\d+|\\*)", Pattern.CASE_INSENSITIVE);
  private static final int COPY_CHUNK = 64 * 1024;
  private static final String OUR_COOKIE = "jnbd.cookie";
  /** With timeout=T a read may take T per started MiB, so large reads on a slow link survive. */
  private static final long TIMEOUT_SCALE_BYTES = 1 << 20;
  private static final Timeout UNBOUNDED_LEASE = Timeout.ofDays(1);
  /**
   * Answers of an origin that is down or restarting behind a gateway (502, 503, 504), or that
   * asks for the request again later (408, 429): worth a retry, unlike any other status.
   */
  private static final Set<Integer> RETRIED_STATUSES = Set.of(408, 429, 502, 503, 504);

  private final URI uri;
  private final String safeUrl;
  private final Duration timeout;
  private final CloseableHttpClient client;
  private final BasicAuthCache authCache = new BasicAuthCache();
  private final RequestHeaders headers;
  private final RetryPolicy retries;
  /** The cookie engine's store (cookiefile=, cookiejar=), or null when it is off. */
  private final CookieStore cookies;
  private final Path cookieJar;
  private final ReentrantLock probeLock = new ReentrantLock();
  private final AtomicBoolean changeReported = new AtomicBoolean();
  /**
   * Copy chunks for bodies read into direct buffers, kept for reuse: a read holds a pooled
   * connection while it copies, so at most {@code connections} are ever in use. A fresh 64 KiB
   * array per read was most of the heap's garbage under load (the http soak: ~35 MiB/s), and G1
   * grew the heap by 100-250 MiB to keep up.
   */
  private final ConcurrentLinkedQueue<byte[]> copyChunks = new ConcurrentLinkedQueue<>();
  private volatile ImageVersion version;

  ApacheRangeClient(HttpSettings settings, RetryPolicy retries) throws IOException {
    this.retries = retries;
    URI given = URI.create(settings.url());
    String user = settings.user();
    String password = settings.password();
    if (given.getUserInfo() != null) {
      // curl accepts credentials in the URL; HttpClient refuses them there, so move them.
      String[] parts = given.getUserInfo().split(":", 2);
      user = user != null ? user : parts[0];
      password = password != null ? password : parts.length > 1 ? parts[1] : "";
    }
    // Rebuilt from the raw (still percent-encoded) parts, so that %2F or %26 keep their meaning.
    uri = URI.create(given.getScheme() + "://" + given.getRawAuthority().substring(given.getRawAuthority().indexOf('@') + 1)
        + (given.getRawPath() == null ? "" : given.getRawPath())
        + (given.getRawQuery() == null ? "" : "?" + given.getRawQuery()));
    safeUrl = Redaction.url(settings.url());
    timeout = settings.timeout();

    BasicCredentialsProvider credentials = new BasicCredentialsProvider();
    if (user != null) {
      HttpHost target = HttpHost.create(uri);
      UsernamePasswordCredentials basic = new UsernamePasswordCredentials(user, (password == null ? "" : password).toCharArray());
      credentials.setCredentials(new AuthScope(target), basic);
      // Preemptive, as curl does, so that every range GET is not preceded by a 401 round trip.
      BasicScheme scheme = new BasicScheme();
      scheme.initPreemptive(basic);
      authCache.put(target, scheme);
    }
    HttpClientBuilder builder = HttpClientBuilder.create()
        .disableContentCompression()
        .setRetryStrategy(new StaleConnectionRetry())
        .setDefaultCredentialsProvider(credentials);
    cookieJar = settings.cookieJar();
    if (settings.cookieEngine()) {
      cookies = CookieJar.load("http: cookiefile", settings.cookieFile(), uri);
      builder.setDefaultCookieStore(cookies).addRequestInterceptorLast(ApacheRangeClient::oneCookieHeader);
    } else {
      cookies = null;
      builder.disableCookieManagement();
    }
    if (settings.proxy() != null) {
      HttpHost proxy = new HttpHost(settings.proxy().getScheme(), settings.proxy().getHost(),
          settings.proxy().getPort() < 0 ? 80 : settings.proxy().getPort());
      builder.setProxy(proxy);
      if (settings.proxyUser() != null) {
        String proxyPassword = settings.proxyPassword() == null ? "" : settings.proxyPassword();
        credentials.setCredentials(new AuthScope(proxy), new UsernamePasswordCredentials(settings.proxyUser(), proxyPassword.toCharArray()));
      }
    }
    if (settings.followLocation()) {
      builder.setRedirectStrategy(new SchemeCheckingRedirects(settings.protocols()));
    } else {
      builder.disableRedirectHandling();
    }
    if (settings.userAgent() != null) {
      builder.setUserAgent(settings.userAgent());
    }
    Timeout idle = timeout == null ? Timeout.DISABLED : Timeout.of(timeout);
    builder.setConnectionManager(DirectBodies.poolBuilder()
        .setMaxConnTotal(settings.connections())
        .setMaxConnPerRoute(settings.connections())
        .setTlsSocketStrategy(uri.getScheme().equalsIgnoreCase("https") || settings.caInfo() != null || settings.caPath() != null
            ? tlsStrategy(settings) : onFirstUse(() -> tlsStrategy(settings)))
        .setDnsResolver(HostResolution.of("http", settings.ipResolve(), settings.resolve(), uri))
        .setDefaultSocketConfig(SocketConfig.custom()
            .setSoKeepAlive(settings.tcpKeepAlive())
            .setTcpNoDelay(settings.tcpNoDelay())
            .setSoTimeout(idle)
            .build())
        .setDefaultConnectionConfig(ConnectionConfig.custom()
            .setConnectTimeout(Timeout.of(settings.connectTimeout()))
            .setSocketTimeout(idle)
            .setValidateAfterInactivity(TimeValue.ofSeconds(2))
            .build())
        .build());
    RequestConfig.Builder requestConfig = RequestConfig.custom()
        .setResponseTimeout(idle)
        // A wait for a pooled connection is a wait for our own earlier requests: bound it by
        // timeout too. Without timeout, a day: the pool takes 0 as "do not wait" and fails
        // Timeout.INFINITE at once (5.6.5), so neither can mean "no limit" here.
        .setConnectionRequestTimeout(timeout == null ? UNBOUNDED_LEASE : Timeout.of(timeout))
        .setMaxRedirects(20);
    if (settings.unixSocketPath() != null) {
      requestConfig.setUnixDomainSocket(settings.unixSocketPath());
    }
    builder.setDefaultRequestConfig(requestConfig.build());
    client = builder.build();
    headers = new RequestHeaders(settings);
    try {
      headers.start();
    } catch (IOException e) {
      close();
      throw e;
    }
  }

  @Override
  public long size() throws IOException {
    return version().size();
  }

  private ImageVersion version() throws IOException {
    ImageVersion known = version;
    if (known != null) {
      return known;
    }
    probeLock.lock();
    try {
      if (version == null) {
        version = probe();
      }
      return version;
    } finally {
      probeLock.unlock();
    }
  }

  /** Probes size and validators, retried like a read when the origin is unavailable. */
  private ImageVersion probe() throws IOException {
    try {
      ImageVersion probed = retries.run(this::probeOnce);
      log.debug("http: {} has {} bytes; reads check {}", safeUrl, probed.size(), probed.checkedBy());
      return probed;
    } catch (NbdException e) {
      throw logged(e);
    }
  }

  /**
   * One round trip where the origin allows it (a serial reader 50 ms away waits for every one): a
   * one-byte range GET proves that the server honours ranges and gives the size (Content-Range)
   * and the validators later replies must match. HEAD follows only when that GET cannot give the
   * size: an empty image (416) or a Content-Range total of '*'.
   */
  private ImageVersion probeOnce() throws IOException {
    ImageVersion probed = null;
    try (Exchange probe = execute(() -> ranged(0, 1, null))) {
      ClassicHttpResponse response = probe.response();
      if (response.getCode() != 416) {
        long total = checkRangeReply(response, 0, 1, "size probe", null);
        readExactly(probe, new byte[1], 0, 1, 0, deadlineFor(1), "size probe");
        probed = ImageVersion.of(total, response);
      }
    } catch (IOException e) {
      throw asFailure("size probe", 0, 1, e);
    }
    // HEAD only once the GET's connection is back in the pool, which may hold just one.
    long fromHead = probed == null || probed.size() < 0 ? headLength() : -1;
    if (probed == null) {
      if (fromHead != 0) {
        throw failure("size probe", 0, 1, "HTTP 416 for the first byte, yet HEAD does not say the image is empty");
      }
      return new ImageVersion(0, null, null);
    }
    if (probed.size() >= 0) {
      return probed;
    }
    if (fromHead < 0) {
      throw failure("size probe", 0, 1, "server gives no size (Content-Range total '*', no Content-Length on HEAD)");
    }
    return new ImageVersion(fromHead, probed.etag(), probed.lastModified());
  }

  /** Content-Length from HEAD; -1 when HEAD gives none. */
  private long headLength() throws IOException {
    try (Exchange head = execute(() -> new HttpHead(uri))) {
      ClassicHttpResponse response = head.response();
      rejectRetriedStatus(response, "size probe", 0, 1);
      Header length = response.getFirstHeader("Content-Length");
      return response.getCode() / 100 == 2 && length != null ? Long.parseLong(length.getValue().trim()) : -1;
    } catch (IOException e) {
      NbdException failure = asFailure("size probe", 0, 1, e);
      if (failure instanceof TransientFailure) {
        throw failure;
      }
      return -1;
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  @Override
  public void read(ByteBuffer dst, long offset) throws IOException {
    int length = dst.remaining();
    if (length == 0) {
      return;
    }
    ImageVersion expected = version();
    int start = dst.position();
    try {
      retries.run(() -> {
        dst.position(start);
        readOnce(dst, offset, length, expected);
        return null;
      });
    } catch (NbdException e) {
      dst.position(start);
      throw logged(e);
    }
  }

  private void readOnce(ByteBuffer dst, long offset, int length, ImageVersion expected) throws IOException {
    long deadline = deadlineFor(length);
    int start = dst.position();
    try (Exchange exchange = execute(() -> ranged(offset, length, expected))) {
      checkRangeReply(exchange.response(), offset, length, "read", expected);
      if (dst.hasArray()) {
        readExactly(exchange, dst.array(), dst.arrayOffset() + start, length, offset, deadline, "read");
        dst.position(start + length);
      } else {
        byte[] pooled = copyChunks.poll();
        byte[] chunk = pooled != null ? pooled : new byte[COPY_CHUNK];
        try {
          InputStream body = exchange.response().getEntity().getContent();
          ScopedValue.where(DirectBodies.TARGET, dst).call(() -> copyBody(body, chunk, dst, offset, length, deadline));
          expectEnd(exchange, body, offset, length);
        } finally {
          copyChunks.offer(chunk);
        }
      }
    } catch (IOException e) {
      throw asFailure("read", offset, length, e);
    }
  }

  /**
   * Reads {@code length} body bytes into {@code dst}: through {@code chunk}, or straight into
   * {@code dst} when the body is a {@link DirectBodies.Body}, which then advances dst itself.
   */
  private Void copyBody(InputStream body, byte[] chunk, ByteBuffer dst, long offset, int length, long deadline)
      throws IOException {
    for (int done = 0; done < length; ) {
      int before = dst.position();
      int n = readSome(body, chunk, 0, Math.min(chunk.length, length - done), offset, length, done, deadline);
      if (dst.position() == before) {
        dst.put(chunk, 0, n);
      }
      done += n;
    }
    return null;
  }

  /** Reads exactly {@code length} body bytes into {@code into}, then requires the body to end. */
  private void readExactly(Exchange exchange, byte[] into, int at, int length, long offset, long deadline, String what)
      throws IOException {
    InputStream body = exchange.response().getEntity().getContent();
    int done = 0;
    while (done < length) {
      done += readSome(body, into, at + done, length - done, offset, length, done, deadline);
    }
    expectEnd(exchange, body, offset, length);
  }

  private int readSome(InputStream body, byte[] into, int at, int max, long offset, long length, int done, long deadline)
      throws IOException {
    int n = body.read(into, at, max);
    if (n < 0) {
      throw failure("read", offset, length, "body ended after " + done + " bytes");
    }
    if (timeout != null && System.nanoTime() - deadline > 0) {
      throw failure("read", offset, length, "timeout: not complete within " + timeout.toSeconds() + " s per started MiB");
    }
    return n;
  }

  /** Requires end of body; reading it also returns the connection to the pool. */
  private void expectEnd(Exchange exchange, InputStream body, long offset, long length) throws IOException {
    if (body.read() >= 0) {
      throw failure("read", offset, length, "body longer than the range");
    }
    exchange.complete();
  }

  /** When a read of {@code length} bytes started now must have finished; meaningless without timeout. */
  private long deadlineFor(long length) {
    long perMiB = timeout == null ? 0 : timeout.toNanos();
    return System.nanoTime() + perMiB * Math.max(1, (length + TIMEOUT_SCALE_BYTES - 1) / TIMEOUT_SCALE_BYTES);
  }

  /** @param expected the version the bytes must come from; null while probing for it */
  private HttpGet ranged(long offset, long length, ImageVersion expected) {
    HttpGet get = new HttpGet(uri);
    get.setHeader("Range", "bytes=" + offset + "-" + (offset + length - 1));
    if (expected != null) {
      expected.addPrecondition(get);
    }
    return get;
  }

  /**
   * Sends a request with the current headers. When the server answers 401 or 403 and a script
   * supplies credentials, the script is re-run (once for all requests that saw the same
   * value) and the request is sent once more. A response whose body is not read to the end is
   * closed by the caller, which discards its connection.
   */
  private Exchange execute(Supplier<HttpUriRequestBase> request) throws IOException {
    RequestHeaders.Snapshot snapshot = headers.current();
    Exchange exchange = send(request.get(), snapshot);
    int code = exchange.response().getCode();
    if ((code == 401 || code == 403) && headers.renewable()) {
      exchange.close();
      headers.renew(snapshot);
      exchange = send(request.get(), headers.current());
    }
    return exchange;
  }

  private Exchange send(HttpUriRequestBase request, RequestHeaders.Snapshot snapshot) throws IOException {
    HttpClientContext context = HttpClientContext.create();
    for (Header header : snapshot.headers()) {
      if (cookies != null && header.getName().equalsIgnoreCase("Cookie")) {
        context.setAttribute(OUR_COOKIE, header.getValue());
      } else {
        request.setHeader(header);
      }
    }
    context.setAuthCache(authCache);
    return new Exchange(request, client.executeOpen(null, request, context));
  }

  /**
   * One request and its response. Closing it before {@link #complete()} cancels the request,
   * which drops the connection at once instead of draining a body we do not trust (a 200 with
   * the whole disk, a stalled server).
   */
  private static final class Exchange implements AutoCloseable {
    private final HttpUriRequestBase request;
    private final ClassicHttpResponse response;
    private boolean completed;

    Exchange(HttpUriRequestBase request, ClassicHttpResponse response) {
      this.request = request;
      this.response = response;
    }

    ClassicHttpResponse response() {
      return response;
    }

    void complete() {
      completed = true;
    }

    @Override
    public void close() throws IOException {
      if (!completed && !(request instanceof HttpHead)) {
        request.cancel();
      }
      response.close();
    }
  }

  /**
   * Checks status, Content-Range, version and Content-Length of a ranged reply.
   *
   * @param expected the version the reply must come from; null while probing for it
   * @return the total size from Content-Range, or -1 when the server wrote '*'
   */
  private long checkRangeReply(ClassicHttpResponse response, long offset, long length, String what, ImageVersion expected)
      throws NbdException {
    rejectRetriedStatus(response, what, offset, length);
    int code = response.getCode();
    if (code == 412 && expected != null) {
      String newEtag = expected.differenceIn(response, -1);
      throw changed(what, offset, length, newEtag != null ? newEtag + ", HTTP 412 to If-Match"
          : "ETag " + expected.etag() + " no longer matches: HTTP 412 to If-Match");
    }
    if (code == 200) {
      throw failure(what, offset, length, "server ignored the Range header (200 instead of 206): it does not support range requests");
    }
    if (code / 100 == 3) {
      throw failure(what, offset, length, "HTTP " + code + " redirect, and followlocation is false");
    }
    if (code != 206) {
      throw failure(what, offset, length, "HTTP " + code + " " + response.getReasonPhrase());
    }
    Header rangeHeader = response.getFirstHeader("Content-Range");
    Matcher range = rangeHeader == null ? null : CONTENT_RANGE.matcher(rangeHeader.getValue().trim());
    if (range == null || !range.matches()) {
      throw failure(what, offset, length, "206 without a valid Content-Range: " + (rangeHeader == null ? "none" : rangeHeader.getValue()));
    }
    long first = Long.parseLong(range.group(1));
    long last = Long.parseLong(range.group(2));
    long total = range.group(3).equals("*") ? -1 : Long.parseLong(range.group(3));
    if (first != offset || last != offset + length - 1) {
      throw failure(what, offset, length, "Content-Range '" + rangeHeader.getValue() + "' does not match the range asked for");
    }
    String difference = expected == null ? null : expected.differenceIn(response, total);
    if (difference != null) {
      throw changed(what, offset, length, difference);
    }
    Header contentLength = response.getFirstHeader("Content-Length");
    if (contentLength != null && !contentLength.getValue().trim().equals(Long.toString(length))) {
      throw failure(what, offset, length, "Content-Length " + contentLength.getValue() + " instead of " + length);
    }
    return total;
  }

  private void rejectRetriedStatus(ClassicHttpResponse response, String what, long offset, long length)
      throws TransientFailure {
    int code = response.getCode();
    if (RETRIED_STATUSES.contains(code)) {
      throw new TransientFailure(request(what, offset, length), "HTTP " + code + " " + response.getReasonPhrase(),
          RetryPolicy.retryAfter(response), null);
    }
  }

  /**
   * Fails a read that met another version of the image. The first such read of this client
   * logs a warning; later ones would only repeat it.
   */
  private NbdException changed(String what, long offset, long length, String difference) {
    if (changeReported.compareAndSet(false, true)) {
      log.warn("http: the image at {} has changed since it was opened ({}); reads that meet the new version fail"
          + " with EIO rather than mix it with the old; restart to serve the new image", safeUrl, difference);
    }
    return new ImageChanged(request(what, offset, length) + " failed: the image has changed since it was opened ("
        + difference + ")");
  }

  /** A read of a changed image; {@link #changed} has logged it. */
  private static final class ImageChanged extends NbdException {
    ImageChanged(String message) {
      super(Errno.EIO, message);
    }
  }

  private String request(String what, long offset, long length) {
    return "http: " + what + " of bytes " + offset + "-" + (offset + length - 1) + " from " + safeUrl;
  }

  private NbdException failure(String what, long offset, long length, String reason) {
    return new NbdException(Errno.EIO, request(what, offset, length) + " failed: " + reason);
  }

  /**
   * The server logs request errors only at debug level; a failing origin deserves a warning. A
   * changed image has had its own, once.
   */
  private static NbdException logged(NbdException failure) {
    if (!(failure instanceof ImageChanged)) {
      log.warn(failure.getMessage());
    }
    return failure;
  }

  /**
   * {@code e} as the failure of a request: unchanged when it is one already; else a transport
   * failure (timeout, reset, TLS) with its kind and message, never a request header, and
   * transient when it comes from an unavailable origin.
   */
  private NbdException asFailure(String what, long offset, long length, IOException e) {
    if (e instanceof NbdException failure) {
      return failure;
    }
    String message = e.getMessage();
    String kind = e.getClass().getSimpleName();
    String reason = message == null ? kind : kind + ": " + message;
    return unavailableOrigin(e)
        ? new TransientFailure(request(what, offset, length), reason, null, e)
        : new NbdException(Errno.EIO, request(what, offset, length) + " failed: " + reason, e);
  }

  /**
   * Transport failures of an origin that is down or restarting: no connection (refused,
   * unreachable, connect timeout), or a connection broken before or during the answer (reset,
   * closed, a chunked body cut short). A timeout on an established connection is not one:
   * timeout= has already bounded how long that read may wait.
   */
  private static boolean unavailableOrigin(IOException e) {
    return e instanceof ConnectTimeoutException || e instanceof SocketException || e instanceof NoHttpResponseException
        || e instanceof ConnectionClosedException || e instanceof TruncatedChunkException;
  }

  /**
   * A request carries one Cookie header: the cookie engine's cookies are added to the one that
   * cookie= or cookie-script set, as curl merges them (RFC 6265 allows only one). The engine adds
   * nothing to a request that has a Cookie header already, so ours waits in the context until
   * the engine is done.
   */
  private static void oneCookieHeader(HttpRequest request, EntityDetails entity, HttpContext context) {
    Object ours = context.getAttribute(OUR_COOKIE);
    if (ours == null) {
      return;
    }
    Header engines = request.getFirstHeader("Cookie");
    request.setHeader("Cookie", engines == null ? (String) ours : ours + "; " + engines.getValue());
  }

  /**
   * TLS for an http:// URL, set up only if a redirect leads to https: setting it up loads the
   * trust store and the public suffix list (~0.1 s of CPU at every start otherwise). With cainfo
   * or capath it is set up at start all the same, so that a bad file is a start-up error.
   */
  private static TlsSocketStrategy onFirstUse(Supplier<TlsSocketStrategy> setUp) {
    return new TlsSocketStrategy() {
      private TlsSocketStrategy strategy;

      @Override
      public SSLSocket upgrade(Socket socket, String target, int port, Object attachment, HttpContext context)
          throws IOException {
        TlsSocketStrategy ready;
        synchronized (this) {
          if (strategy == null) {
            strategy = setUp.get();
          }
          ready = strategy;
        }
        return ready.upgrade(socket, target, port, attachment, context);
      }
    };
  }

  private static DefaultClientTlsStrategy tlsStrategy(HttpSettings settings) {
    String[] protocols = settings.tls().protocols() != null ? settings.tls().protocols() : HttpsSupport.getSystemProtocols();
    String[] suites = settings.tls().cipherSuites() != null ? settings.tls().cipherSuites() : HttpsSupport.getSystemCipherSuits();
    if (suites == null) {
      suites = settings.tls().defaultCipherSuites();
    }
    try {
      if (!settings.sslVerify()) {
        SSLContext trustAll = SSLContextBuilder.create().loadTrustMaterial(TrustAllStrategy.INSTANCE).build();
        return new DefaultClientTlsStrategy(trustAll, protocols, suites, SSLBufferMode.STATIC,
            HostnameVerificationPolicy.CLIENT, NoopHostnameVerifier.INSTANCE);
      }
      if (settings.caInfo() == null && settings.caPath() == null) {
        return new DefaultClientTlsStrategy(SSLContexts.createSystemDefault(), protocols, suites, SSLBufferMode.STATIC,
            HostnameVerificationPolicy.BOTH, HttpsSupport.getDefaultHostnameVerifier());
      }
      KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());
      trusted.load(null, null);
      List<Path> pems = new ArrayList<>();
      if (settings.caInfo() != null) {
        pems.add(settings.caInfo());
      }
      if (settings.caPath() != null) {
        try (Stream<Path> files = Files.list(settings.caPath())) {
          files.filter(Files::isRegularFile).sorted().forEach(pems::add);
        }
      }
      CertificateFactory x509 = CertificateFactory.getInstance("X.509");
      int alias = 0;
      for (Path pem : pems) {
        try (InputStream in = Files.newInputStream(pem)) {
          for (Certificate certificate : x509.generateCertificates(in)) {
            trusted.setCertificateEntry("ca" + alias++, certificate);
          }
        } catch (GeneralSecurityException e) {
          if (settings.caInfo() != null && pem.equals(settings.caInfo())) {
            throw e;
          }
          // capath directories often hold other files (hash links, CRLs): skip what is not a certificate.
        }
      }
      if (alias == 0) {
        throw new ConfigException("http: cainfo/capath: no PEM certificates found");
      }
      SSLContext context = SSLContextBuilder.create().loadTrustMaterial(trusted, null).build();
      return new DefaultClientTlsStrategy(context, protocols, suites, SSLBufferMode.STATIC,
          HostnameVerificationPolicy.BOTH, HttpsSupport.getDefaultHostnameVerifier());
    } catch (GeneralSecurityException | IOException e) {
      throw new ConfigException("http: cannot set up TLS trust: " + e.getMessage(), e);
    }
  }

  @Override
  public void close() {
    if (headers != null) {
      headers.close();
    }
    // Graceful: idle keep-alive connections end with a normal close, not a reset the origin logs.
    client.close(CloseMode.GRACEFUL);
    if (cookieJar != null) {
      try {
        CookieJar.save(cookies, cookieJar);
      } catch (IOException e) {
        log.warn("http: cookiejar: cannot write {}: {}", cookieJar, e.getMessage());
      }
    }
  }

  /** Retries only a request that met a keep-alive connection the server had closed meanwhile. */
  private static final class StaleConnectionRetry implements HttpRequestRetryStrategy {
    @Override
    public boolean retryRequest(HttpRequest request, IOException exception, int execCount, HttpContext context) {
      return execCount <= 1 && exception instanceof NoHttpResponseException;
    }

    @Override
    public boolean retryRequest(HttpResponse response, int execCount, HttpContext context) {
      return false;
    }

    @Override
    public TimeValue getRetryInterval(HttpResponse response, int execCount, HttpContext context) {
      return TimeValue.ZERO_MILLISECONDS;
    }
  }

  /** Follows redirects only to schemes that protocols= allows, as curl's protocol list does. */
  private static final class SchemeCheckingRedirects extends DefaultRedirectStrategy {
    private final java.util.Set<String> allowed;

    SchemeCheckingRedirects(java.util.Set<String> allowed) {
      this.allowed = allowed;
    }

    @Override
    public URI getLocationURI(HttpRequest request, HttpResponse response, HttpContext context) throws HttpException {
      URI location = super.getLocationURI(request, response, context);
      String scheme = location.getScheme() == null ? "" : location.getScheme().toLowerCase(Locale.ROOT);
      if (!allowed.contains(scheme)) {
        throw new ProtocolException("redirect to a " + scheme + " URL, which protocols= does not allow");
      }
      return location;
    }
  }
}
