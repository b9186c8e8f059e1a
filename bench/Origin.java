import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The benchmarks' stand-in for a slow remote image server (vCenter): serves one file over
 * HTTP/1.1 with single byte ranges, sleeps a fixed delay before every response, and counts the
 * requests and body bytes it sends. Run as a source file, so the benchmark needs no build of it:
 *
 * <pre>java bench/Origin.java FILE DELAY_MS PORTFILE</pre>
 *
 * It binds a free loopback port and writes it to PORTFILE. GET /_stats answers "requests bytes";
 * GET /_reset zeroes the counters. Any other path serves FILE.
 */
public final class Origin {
  private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d*)");
  private static final AtomicLong requests = new AtomicLong();
  private static final AtomicLong bytes = new AtomicLong();

  public static void main(String[] args) throws IOException {
    // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to every response.
    System.setProperty("sun.net.httpserver.nodelay", "true");
    Path file = Path.of(args[0]);
    long delayMillis = Long.parseLong(args[1]);
    FileChannel channel = FileChannel.open(file, StandardOpenOption.READ);
    long size = channel.size();
    HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 256);
    server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
    server.createContext("/_stats", exchange -> text(exchange, requests.get() + " " + bytes.get()));
    server.createContext("/_reset", exchange -> {
      requests.set(0);
      bytes.set(0);
      text(exchange, "ok");
    });
    server.createContext("/", exchange -> serve(exchange, channel, size, delayMillis));
    server.start();
    java.nio.file.Files.writeString(Path.of(args[2]), Integer.toString(server.getAddress().getPort()));
  }

  private static void serve(HttpExchange exchange, FileChannel channel, long size, long delayMillis)
      throws IOException {
    try (exchange) {
      requests.incrementAndGet();
      if (delayMillis > 0) {
        Thread.sleep(delayMillis);
      }
      exchange.getResponseHeaders().set("Accept-Ranges", "bytes");
      exchange.getResponseHeaders().set("Content-Type", "application/octet-stream");
      boolean head = exchange.getRequestMethod().equals("HEAD");
      String range = exchange.getRequestHeaders().getFirst("Range");
      long start = 0;
      long end = size - 1;
      int status = 200;
      if (range != null) {
        Matcher m = RANGE.matcher(range.trim());
        if (!m.matches() || Long.parseLong(m.group(1)) >= size) {
          exchange.getResponseHeaders().set("Content-Range", "bytes */" + size);
          exchange.sendResponseHeaders(416, -1);
          return;
        }
        start = Long.parseLong(m.group(1));
        end = m.group(2).isEmpty() ? size - 1 : Math.min(Long.parseLong(m.group(2)), size - 1);
        status = 206;
        exchange.getResponseHeaders().set("Content-Range", "bytes " + start + "-" + end + "/" + size);
      }
      long length = end - start + 1;
      if (head) {
        exchange.getResponseHeaders().set("Content-Length", Long.toString(length));
        exchange.sendResponseHeaders(status, -1);
        return;
      }
      exchange.sendResponseHeaders(status, length);
      OutputStream out = exchange.getResponseBody();
      byte[] chunk = new byte[256 * 1024];
      ByteBuffer buffer = ByteBuffer.wrap(chunk);
      for (long at = start; at <= end; ) {
        buffer.clear().limit((int) Math.min(chunk.length, end + 1 - at));
        int n = channel.read(buffer, at);
        out.write(chunk, 0, n);
        at += n;
        bytes.addAndGet(n);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void text(HttpExchange exchange, String body) throws IOException {
    try (exchange) {
      byte[] data = body.getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, data.length);
      exchange.getResponseBody().write(data);
    }
  }
}
