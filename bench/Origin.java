import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The benchmarks' stand-in for a slow remote image server (vCenter): serves one file over
 * HTTP/1.1 with single byte ranges, sleeps a fixed delay before every response, and counts the
 * requests and body bytes it sends. Run as a source file, so the benchmark needs no build of it:
 *
 * <pre>java bench/Origin.java FILE DELAY_MS PORTFILE [LINK_MIB_PER_S [LOGFILE]]</pre>
 *
 * <p>With LINK_MIB_PER_S, every response body shares one link of that rate: a chunk goes out
 * when the link has carried the chunks before it, whichever connection they were on (0: no
 * limit). With LOGFILE, each response appends a line "START_MS OFFSET LENGTH DURATION_MS": when
 * its request arrived (milliseconds since the epoch) and how long the response took,
 * delay included, to see where a client's time goes.
 *
 * It binds a free loopback port and writes it to PORTFILE. GET /_stats answers "requests bytes";
 * GET /_reset zeroes the counters and ends any fault. Any other path serves FILE, with an ETag
 * and a Last-Modified of its version, and honours If-Match.
 *
 * <p>Faults, armed by GET /_fault?KEY=VALUE and set off once the origin has sent that many body
 * bytes (counted since /_reset): {@code outage_at=BYTES&outage_ms=MS} closes the port and every
 * connection, and listens again on the same port MS later; {@code change_at=BYTES} replaces the
 * image by another of the same size (every byte inverted) with a new ETag and Last-Modified.
 */
public final class Origin {
  private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d*)");
  private static final Pattern FAULT = Pattern.compile("(outage_at|outage_ms|change_at)=(\\d+)");
  private static final DateTimeFormatter HTTP_DATE = DateTimeFormatter.ofPattern("EEE, dd MMM yyyy HH:mm:ss 'GMT'", Locale.US);
  private static final AtomicLong requests = new AtomicLong();
  private static final AtomicLong bytes = new AtomicLong();
  private static Path file;
  private static FileChannel channel;
  private static long size;
  private static long delayMillis;
  /** The link's rate, bytes per second, shared by every response; 0 for no limit. */
  private static long linkBytesPerSecond;
  /** When the link is next free, in System.nanoTime() terms. */
  private static long linkFreeAt;
  private static int port;
  private static HttpServer server;
  private static volatile long outageAt = -1;
  private static volatile long outageMillis;
  private static volatile long changeAt = -1;
  /** Which version of the image is served: 0 is FILE as it is, 1 has every byte inverted. */
  private static volatile int version;
  /** Where each response is logged; null for no log. */
  private static PrintStream requestLog;

  public static void main(String[] args) throws IOException {
    // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to every response.
    System.setProperty("sun.net.httpserver.nodelay", "true");
    file = Path.of(args[0]);
    delayMillis = Long.parseLong(args[1]);
    linkBytesPerSecond = args.length > 3 ? Long.parseLong(args[3]) << 20 : 0;
    if (args.length > 4) {
      requestLog = new PrintStream(new FileOutputStream(args[4], true), true, StandardCharsets.UTF_8);
    }
    channel = FileChannel.open(file, StandardOpenOption.READ);
    size = channel.size();
    listen(0);
    port = server.getAddress().getPort();
    java.nio.file.Files.writeString(Path.of(args[2]), Integer.toString(port));
  }

  private static void listen(int onPort) throws IOException {
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), onPort), 256);
    server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
    server.createContext("/_stats", exchange -> text(exchange, requests.get() + " " + bytes.get()));
    server.createContext("/_reset", exchange -> {
      requests.set(0);
      bytes.set(0);
      outageAt = -1;
      changeAt = -1;
      version = 0;
      text(exchange, "ok");
    });
    server.createContext("/_fault", exchange -> {
      Matcher m = FAULT.matcher(String.valueOf(exchange.getRequestURI().getQuery()));
      while (m.find()) {
        long value = Long.parseLong(m.group(2));
        switch (m.group(1)) {
          case "outage_at" -> outageAt = value;
          case "outage_ms" -> outageMillis = value;
          default -> changeAt = value;
        }
      }
      text(exchange, "ok");
    });
    server.createContext("/", Origin::serve);
    server.start();
  }

  /** Sets off an armed fault once {@code sent} body bytes have gone out. */
  private static synchronized void faultsAfter(long sent) {
    if (changeAt >= 0 && sent >= changeAt) {
      changeAt = -1;
      version = 1;
    }
    if (outageAt >= 0 && sent >= outageAt) {
      outageAt = -1;
      HttpServer down = server;
      // Not on a handler's thread, as stopping waits for the handlers; and not a daemon, which
      // it would inherit from the virtual handler thread, or the JVM would exit while no server runs.
      Thread.ofPlatform().daemon(false).start(() -> {
        down.stop(0);
        try {
          Thread.sleep(outageMillis);
          listen(port);
        } catch (InterruptedException | IOException e) {
          e.printStackTrace();
          System.exit(1);
        }
      });
    }
  }

  private static String etag(int version) {
    return "\"" + Long.toHexString(size) + "-v" + version + "\"";
  }

  private static String lastModified(int version) throws IOException {
    ZonedDateTime modified = java.nio.file.Files.getLastModifiedTime(file).toInstant().atZone(ZoneOffset.UTC);
    return HTTP_DATE.format(modified.plusSeconds(version));
  }

  private static void serve(HttpExchange exchange) throws IOException {
    long arrivedMillis = System.currentTimeMillis();
    long arrived = System.nanoTime();
    long logStart = -1;
    long logLength = 0;
    try (exchange) {
      requests.incrementAndGet();
      if (delayMillis > 0) {
        Thread.sleep(delayMillis);
      }
      int served = version;
      exchange.getResponseHeaders().set("Accept-Ranges", "bytes");
      exchange.getResponseHeaders().set("Content-Type", "application/octet-stream");
      exchange.getResponseHeaders().set("ETag", etag(served));
      exchange.getResponseHeaders().set("Last-Modified", lastModified(served));
      String ifMatch = exchange.getRequestHeaders().getFirst("If-Match");
      if (ifMatch != null && !ifMatch.strip().equals("*") && !ifMatch.strip().equals(etag(served))) {
        exchange.sendResponseHeaders(412, -1);
        return;
      }
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
      logStart = start;
      logLength = length;
      exchange.sendResponseHeaders(status, length);
      OutputStream out = exchange.getResponseBody();
      byte[] chunk = new byte[256 * 1024];
      ByteBuffer buffer = ByteBuffer.wrap(chunk);
      for (long at = start; at <= end; ) {
        buffer.clear().limit((int) Math.min(chunk.length, end + 1 - at));
        int n = channel.read(buffer, at);
        if (served == 1) {
          for (int i = 0; i < n; i++) {
            chunk[i] = (byte) ~chunk[i];
          }
        }
        awaitLink(n);
        out.write(chunk, 0, n);
        at += n;
        faultsAfter(bytes.addAndGet(n));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      if (requestLog != null && logStart >= 0) {
        long now = System.nanoTime();
        requestLog.printf("%d %d %d %.1f%n", arrivedMillis, logStart, logLength, (now - arrived) / 1e6);
      }
    }
  }

  /** Waits until the link has carried {@code n} more bytes after what it carries already. */
  private static void awaitLink(int n) throws InterruptedException {
    if (linkBytesPerSecond == 0) {
      return;
    }
    long done;
    synchronized (Origin.class) {
      long start = Math.max(System.nanoTime(), linkFreeAt);
      linkFreeAt = done = start + n * 1_000_000_000L / linkBytesPerSecond;
    }
    long wait = done - System.nanoTime();
    if (wait > 0) {
      Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
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
