package io.jnbd.testing;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
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
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;

/**
 * An HTTP(S) origin serving one byte array at {@code /disk.img} with Range support, for tests
 * and benchmarks of HTTP-backed exports. Behaviour can be bent per test: a delay before every
 * response, an authorization gate, a HEAD that fails, a server that ignores ranges, and queued
 * {@link Fault}s that hit the next ranged GETs. {@code /redirect} answers 302 to {@code
 * /disk.img}. It records what it saw, so tests can check what the client sent.
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
    STATUS_500,
    STATUS_503,
    /** Headers promise the full range; the connection closes after half of it. */
    RESET_MID_BODY,
    /** No answer for {@link #stallMillis}. */
    STALL
  }

  private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d+)");

  private final byte[] data;
  private final HttpServer server;
  private final Deque<Fault> faults = new ArrayDeque<>();
  public volatile int delayMillis;
  public volatile int stallMillis = 10_000;
  public volatile boolean ignoreRanges;
  /** When non-zero, HEAD answers this status instead of 200. */
  public volatile int headStatus;
  /** Requests whose headers fail this get 401. */
  public volatile Predicate<Headers> authorized = headers -> true;
  public final AtomicInteger rangedGets = new AtomicInteger();
  public final AtomicInteger unauthorized = new AtomicInteger();
  /** Raw (percent-encoded) query strings of every request, null where there was none. */
  public final List<String> queries = new CopyOnWriteArrayList<>();
  /** Request headers of every request, in arrival order. */
  public final List<Headers> seen = new CopyOnWriteArrayList<>();

  private RangeOrigin(byte[] data, HttpServer server) {
    this.data = data;
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

  public static RangeOrigin https(byte[] data, SSLContext tls) {
    try {
      HttpsServer server = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
      server.setHttpsConfigurator(new HttpsConfigurator(tls));
      return new RangeOrigin(data, server);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
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

  private Fault nextFault() {
    synchronized (faults) {
      return faults.poll();
    }
  }

  private void serve(HttpExchange exchange) throws IOException {
    try (exchange) {
      Headers request = exchange.getRequestHeaders();
      seen.add(request);
      queries.add(exchange.getRequestURI().getRawQuery());
      if (delayMillis > 0) {
        Thread.sleep(delayMillis);
      }
      Headers response = exchange.getResponseHeaders();
      if (!authorized.test(request)) {
        unauthorized.incrementAndGet();
        response.set("WWW-Authenticate", "Basic realm=\"origin\"");
        exchange.sendResponseHeaders(401, -1);
        return;
      }
      response.set("Accept-Ranges", "bytes");
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
            sendRange(exchange, shifted, length);
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
          case STATUS_500, STATUS_503 -> {
            exchange.sendResponseHeaders(fault == Fault.STATUS_500 ? 500 : 503, -1);
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
      sendRange(exchange, first, length);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (IOException e) {
      // The client went away or the fault closed the connection; nothing to answer.
    }
  }

  private void sendRange(HttpExchange exchange, int first, int length) throws IOException {
    exchange.getResponseHeaders().set("Content-Range", "bytes " + first + "-" + (first + length - 1) + "/" + data.length);
    exchange.sendResponseHeaders(206, length);
    exchange.getResponseBody().write(data, first, length);
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
