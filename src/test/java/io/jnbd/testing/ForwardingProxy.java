package io.jnbd.testing;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A plain forwarding HTTP proxy (absolute-form requests, no CONNECT) that requires Basic proxy
 * credentials and counts what it forwarded. Enough to prove a client really goes through it.
 */
public final class ForwardingProxy implements AutoCloseable {
  private static final List<String> FORWARDED_REQUEST = List.of("Range", "Cookie", "Authorization", "User-Agent");
  private static final List<String> FORWARDED_RESPONSE = List.of("Content-Range", "Accept-Ranges", "Content-Length", "Location");
  private final HttpServer server;
  private final String expectedAuthorization;
  public final AtomicInteger forwarded = new AtomicInteger();

  public ForwardingProxy(String user, String password) {
    expectedAuthorization = "Basic " + Base64.getEncoder().encodeToString((user + ":" + password).getBytes(StandardCharsets.UTF_8));
    try {
      server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
    server.createContext("/", this::forward);
    server.start();
  }

  public String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private void forward(HttpExchange exchange) throws IOException {
    try (exchange) {
      if (!expectedAuthorization.equals(exchange.getRequestHeaders().getFirst("Proxy-Authorization"))) {
        exchange.getResponseHeaders().set("Proxy-Authenticate", "Basic realm=\"proxy\"");
        exchange.sendResponseHeaders(407, -1);
        return;
      }
      URI target = exchange.getRequestURI();
      if (target.getHost() == null) {
        exchange.sendResponseHeaders(400, -1);
        return;
      }
      forwarded.incrementAndGet();
      HttpURLConnection upstream = (HttpURLConnection) target.toURL().openConnection(Proxy.NO_PROXY);
      upstream.setInstanceFollowRedirects(false);
      upstream.setRequestMethod(exchange.getRequestMethod());
      for (String name : FORWARDED_REQUEST) {
        String value = exchange.getRequestHeaders().getFirst(name);
        if (value != null) {
          upstream.setRequestProperty(name, value);
        }
      }
      int status = upstream.getResponseCode();
      for (String name : FORWARDED_RESPONSE) {
        String value = upstream.getHeaderField(name);
        if (value != null && !name.equals("Content-Length")) {
          exchange.getResponseHeaders().set(name, value);
        }
      }
      if (exchange.getRequestMethod().equals("HEAD")) {
        String length = upstream.getHeaderField("Content-Length");
        if (length != null) {
          exchange.getResponseHeaders().set("Content-Length", length);
        }
        exchange.sendResponseHeaders(status, -1);
        return;
      }
      InputStream body = status >= 400 ? upstream.getErrorStream() : upstream.getInputStream();
      byte[] bytes = body == null ? new byte[0] : body.readAllBytes();
      exchange.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
      exchange.getResponseBody().write(bytes);
    }
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
