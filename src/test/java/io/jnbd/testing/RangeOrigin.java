package io.jnbd.testing;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsExchange;
import com.sun.net.httpserver.HttpsParameters;
import com.sun.net.httpserver.HttpsServer;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;

/**
 * An HTTP(S) origin serving one byte array at {@code /disk.img} with Range support, for tests
 * and benchmarks of HTTP-backed exports. Behaviour can be bent per test: a delay before every
 * response, an authorization gate, a HEAD that fails, a server that ignores ranges, queued
 * {@link Fault}s that hit the next ranged GETs, and an image that {@linkplain #change changes}
 * along with its ETag and Last-Modified, which {@code If-Match} is checked against. {@code
 * /redirect} answers 302 to {@code /disk.img}. It records what it saw, so tests can check what
 * the client sent.
 */
public final class RangeOrigin implements AutoCloseable {
  /** One misbehaviour of a ranged GET. */
  public enum Fault {
    /** A 206 whose Content-Range (and data) start one byte later than asked. */
    WRONG_CONTENT_RANGE,
    /** A 206 with the right Content-Range but ten bytes fewer in the body. */
    SHORT_BODY,
    /** As SHORT_BODY, but chunked, so that only counting the body can notice. */
    SHORT_CHUNKED_BODY,
    /** A chunked 206 whose body runs ten bytes past the range. */
    LONG_CHUNKED_BODY,
    /** The whole file with 200, as a server without range support answers. */
    FULL_200,
    STATUS_404,
    /** Sends {@link #retryAfter} when set, as STATUS_503 does. */
    STATUS_429,
    STATUS_500,
    STATUS_503,
    /** Headers promise the full range; the connection closes after half of it. */
    RESET_MID_BODY,
    /** No answer for {@link #stallMillis}. */
    STALL
  }

  private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d+)");

  private final HttpServer server;
  private volatile Image image;
  private final Deque<Fault> faults = new ArrayDeque<>();
  public volatile int delayMillis;
  public volatile int stallMillis = 10_000;
  public volatile boolean ignoreRanges;
  /** Retry-After value sent with STATUS_429 and STATUS_503 faults; none when null. */
  public volatile String retryAfter;
  /** When false, If-Match is ignored, as by servers that do not implement it. */
  public volatile boolean honourIfMatch = true;
  /** When non-zero, HEAD answers this status instead of 200. */
  public volatile int headStatus;
  /** Requests whose headers fail this get 401. */
  public volatile Predicate<Headers> authorized = headers -> true;
  /** The Set-Cookie value an authorized request's answer carries, or null for none. */
  public volatile Function<Headers, String> cookieToSet = headers -> null;
  /** "PROTOCOL SUITE" of every HTTPS request, in arrival order. */
  public final List<String> tlsSessions = new CopyOnWriteArrayList<>();
  public final AtomicInteger rangedGets = new AtomicInteger();
  public final AtomicInteger unauthorized = new AtomicInteger();
  /** Raw (percent-encoded) query strings of every request, null where there was none. */
  public final List<String> queries = new CopyOnWriteArrayList<>();
  /** Request headers of every request, in arrival order. */
  public final List<Headers> seen = new CopyOnWriteArrayList<>();
  /** The method of every request, in arrival order. */
  public final List<String> methods = new CopyOnWriteArrayList<>();

  /** The bytes served and the validators describing them; null validators are not sent. */
  private record Image(byte[] data, String etag, String lastModified) {}

  private RangeOrigin(byte[] data, HttpServer server) {
    this.image = new Image(data, null, null);
    this.server = server;
    server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
    server.createContext("/disk.img", this::serve);
    server.createContext("/redirect", exchange -> {
      exchange.getResponseHeaders().set("Location", "/disk.img");
      exchange.sendResponseHeaders(302, -1);
      exchange.close();
    });
    server.start();
  }

  public static RangeOrigin http(byte[] data) {
    try {
      return new RangeOrigin(data, HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** @param protocols the TLS versions the origin accepts; none given: the JDK's defaults */
  public static RangeOrigin https(byte[] data, SSLContext tls, String... protocols) {
    try {
      HttpsServer server = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
      server.setHttpsConfigurator(new HttpsConfigurator(tls) {
        @Override
        public void configure(HttpsParameters params) {
          SSLParameters parameters = tls.getDefaultSSLParameters();
          // The client's order decides, as nginx's does by default (ssl_prefer_server_ciphers off).
          parameters.setUseCipherSuitesOrder(false);
          if (protocols.length > 0) {
            parameters.setProtocols(protocols);
          }
          params.setSSLParameters(parameters);
        }
      });
      return new RangeOrigin(data, server);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Serves the image at {@code path} too (with any query), as at {@code /disk.img}. */
  public RangeOrigin alsoAt(String path) {
    server.createContext(path, this::serve);
    return this;
  }

  /** The URL of the image, e.g. {@code http://127.0.0.1:PORT/disk.img}. */
  public String url() {
    return url("/disk.img");
  }

  public String url(String path) {
    String scheme = server instanceof HttpsServer ? "https" : "http";
    return scheme + "://127.0.0.1:" + server.getAddress().getPort() + path;
  }

  public int port() {
    return server.getAddress().getPort();
  }

  /** Makes the next {@code times} ranged GETs misbehave as {@code fault}. */
  public void failNext(Fault fault, int times) {
    synchronized (faults) {
      for (int i = 0; i < times; i++) {
        faults.add(fault);
      }
    }
  }

  /** From now on serves {@code data} with these validators (null: the header is not sent). */
  public void change(byte[] data, String etag, String lastModified) {
    image = new Image(data, etag, lastModified);
  }

  private Fault nextFault() {
    synchronized (faults) {
      return faults.poll();
    }
  }

  private void serve(HttpExchange exchange) throws IOException {
    try (exchange) {
      Headers request = exchange.getRequestHeaders();
      seen.add(request);
      methods.add(exchange.getRequestMethod());
      if (exchange instanceof HttpsExchange secure) {
        tlsSessions.add(secure.getSSLSession().getProtocol() + " " + secure.getSSLSession().getCipherSuite());
      }
      queries.add(exchange.getRequestURI().getRawQuery());
      if (delayMillis > 0) {
        Thread.sleep(delayMillis);
      }
      Headers response = exchange.getResponseHeaders();
      Image image = this.image;
      byte[] data = image.data();
      if (!authorized.test(request)) {
        unauthorized.incrementAndGet();
        response.set("WWW-Authenticate", "Basic realm=\"origin\"");
        exchange.sendResponseHeaders(401, -1);
        return;
      }
      String cookie = cookieToSet.apply(request);
      if (cookie != null) {
        response.add("Set-Cookie", cookie);
      }
      response.set("Accept-Ranges", "bytes");
      if (image.etag() != null) {
        response.set("ETag", image.etag());
      }
      if (image.lastModified() != null) {
        response.set("Last-Modified", image.lastModified());
      }
      String ifMatch = request.getFirst("If-Match");
      if (ifMatch != null && honourIfMatch && !matches(ifMatch, image.etag())) {
        exchange.sendResponseHeaders(412, -1);
        return;
      }
      if (exchange.getRequestMethod().equals("HEAD")) {
        if (headStatus != 0) {
          exchange.sendResponseHeaders(headStatus, -1);
        } else {
          response.set("Content-Length", Integer.toString(data.length));
          exchange.sendResponseHeaders(200, -1);
        }
        return;
      }
      String range = request.getFirst("Range");
      Matcher matcher = range == null ? null : RANGE.matcher(range);
      if (matcher == null || !matcher.matches() || ignoreRanges) {
        exchange.sendResponseHeaders(200, data.length);
        exchange.getResponseBody().write(data);
        return;
      }
      rangedGets.incrementAndGet();
      int first = Integer.parseInt(matcher.group(1));
      int last = Math.min(Integer.parseInt(matcher.group(2)), data.length - 1);
      if (first >= data.length) {
        response.set("Content-Range", "bytes */" + data.length);
        exchange.sendResponseHeaders(416, -1);
        return;
      }
      int length = last - first + 1;
      Fault fault = nextFault();
      if (fault != null) {
        switch (fault) {
          case WRONG_CONTENT_RANGE -> {
            int shifted = Math.min(first + 1, data.length - length);
            sendRange(exchange, data, shifted, length);
            return;
          }
          case SHORT_BODY -> {
            response.set("Content-Range", "bytes " + first + "-" + last + "/" + data.length);
            exchange.sendResponseHeaders(206, Math.max(1, length - 10));
            exchange.getResponseBody().write(data, first, Math.max(1, length - 10));
            return;
          }
          case SHORT_CHUNKED_BODY, LONG_CHUNKED_BODY -> {
            response.set("Content-Range", "bytes " + first + "-" + last + "/" + data.length);
            exchange.sendResponseHeaders(206, 0);
            int sent = fault == Fault.SHORT_CHUNKED_BODY ? Math.max(1, length - 10) : Math.min(length + 10, data.length - first);
            exchange.getResponseBody().write(data, first, sent);
            return;
          }
          case FULL_200 -> {
            exchange.sendResponseHeaders(200, data.length);
            exchange.getResponseBody().write(data);
            return;
          }
          case STATUS_404, STATUS_500 -> {
            exchange.sendResponseHeaders(fault == Fault.STATUS_404 ? 404 : 500, -1);
            return;
          }
          case STATUS_429, STATUS_503 -> {
            if (retryAfter != null) {
              response.set("Retry-After", retryAfter);
            }
            exchange.sendResponseHeaders(fault == Fault.STATUS_429 ? 429 : 503, -1);
            return;
          }
          case RESET_MID_BODY -> {
            response.set("Content-Range", "bytes " + first + "-" + last + "/" + data.length);
            exchange.sendResponseHeaders(206, length);
            OutputStream body = exchange.getResponseBody();
            body.write(data, first, length / 2);
            body.flush();
            // Closing a fixed-length body early makes the server drop the connection.
            return;
          }
          case STALL -> Thread.sleep(stallMillis);
        }
      }
      sendRange(exchange, data, first, length);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (IOException e) {
      // The client went away or the fault closed the connection; nothing to answer.
    }
  }

  /** If-Match with strong comparison: a weak or missing ETag never matches, {@code *} always does. */
  private static boolean matches(String ifMatch, String etag) {
    for (String candidate : ifMatch.split(",")) {
      String tag = candidate.strip();
      if (tag.equals("*") || etag != null && !etag.startsWith("W/") && tag.equals(etag)) {
        return true;
      }
    }
    return false;
  }

  private static void sendRange(HttpExchange exchange, byte[] data, int first, int length) throws IOException {
    exchange.getResponseHeaders().set("Content-Range", "bytes " + first + "-" + (first + length - 1) + "/" + data.length);
    exchange.sendResponseHeaders(206, length);
    exchange.getResponseBody().write(data, first, length);
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
