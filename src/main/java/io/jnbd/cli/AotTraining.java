package io.jnbd.cli;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Nbd.ClientFlag;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.Opt;
import io.jnbd.protocol.Nbd.Rep;
import io.jnbd.protocol.Request;
import io.jnbd.server.Catalog;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The training run behind jnbd's AOT cache: the build runs this class once in a JVM started with
 * {@code -XX:AOTCacheOutput=jnbd.aot} and jnbd's JVM options, and the JVM stores every class this
 * run loaded and linked, and the profiles of the methods it ran, for later starts to map instead
 * of loading and profiling again (docs/install.md). So it runs what real starts run: the
 * informational options, a captive start, and servers over the memory and file plugins and over
 * the http plugin against a local origin, under the filters that virt-v2v and remote reading use,
 * each read and written by an NBD client over a Unix socket. Any failure fails the build: a
 * cache trained on an error path would speed up the wrong code.
 *
 * <p>With the argument {@code local} it trains the cache for servers that reach no other host
 * and speak no TLS (bin/jvm-options.sh chooses): the same minus the http plugin and the https
 * starts, whose classes the JVM would otherwise load at every start of those servers.
 */
public final class AotTraining {
  private static final int IMAGE_SIZE = 4 << 20;
  private static final int[] READ_SIZES = {4096, 65536, 262144};
  private static final int REQUESTS_PER_PASS = 600;
  private static final int BURST = 16;

  private AotTraining() {}

  public static void main(String[] args) throws Exception {
    boolean local = switch (String.join(" ", args)) {
      case "local" -> true;
      case "" -> false;
      default -> throw new IllegalArgumentException("usage: AotTraining [local]");
    };
    Path directory = Files.createTempDirectory("jnbd-training");
    try {
      train(directory, local);
    } finally {
      try (var files = Files.walk(directory)) {
        for (Path file : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(file);
        }
      }
    }
  }

  private static void train(Path directory, boolean local) throws Exception {
    PrintStream discard = new PrintStream(OutputStream.nullOutputStream());
    List<List<String>> commands = new ArrayList<>(List.of(
        List.of("--version"), List.of("--dump-config"), List.of("--help"),
        List.of("memory", "--help"), List.of("null", "--filter=cow", "--filter=retry", "--help"),
        List.of("file", "--dump-plugin"), List.of("--run", "true", "memory", "1G"),
        List.of("-f", "--no-such-option", "memory", "1G")));
    if (!local) {
      // An https URL's TLS set-up at start (trust store, hostname verifier), which http:// URLs
      // no longer make; not a TLS transfer, which would train the ciphers at C1 (docs/plugins/http.md).
      commands.add(List.of("--run", "true", "http", "url=https://127.0.0.1:9/disk.img"));
      commands.add(List.of("--run", "true", "http", "url=https://127.0.0.1:9/disk.img", "sslverify=false"));
    }
    for (List<String> command : commands) {
      int status = Main.run(command.toArray(String[]::new), discard, discard);
      // A bad option too: the cache holds only classes the training linked, and picocli's
      // exceptions are linked only when thrown.
      int expected = command.contains("--no-such-option") ? 1 : 0;
      if (status != expected) {
        throw new IllegalStateException("training: jnbd " + command + " exited with " + status);
      }
    }
    byte[] image = new byte[IMAGE_SIZE];
    for (int i = 0; i < image.length; i++) {
      image[i] = (byte) (i * 31 + i / 4096);
    }
    Path file = Files.write(directory.resolve("disk.img"), image);
    Path socket = directory.resolve("nbd.sock");
    serve(socket, true, "memory", "64M");
    serve(socket, true, "--filter=cache", "--filter=offset", "file", file.toString(), "offset=4096");
    if (local) {
      return;
    }
    HttpServer origin = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    origin.createContext("/disk.img", exchange -> serveRange(exchange, image));
    origin.start();
    try {
      String url = "url=http://127.0.0.1:" + origin.getAddress().getPort() + "/disk.img";
      serve(socket, false, "-r", "--filter=readahead", "--filter=cache", "http", url);
      // virt-v2v's remote-input line (docs: shared notes on virt-v2v).
      serve(socket, true, "--threads", "16", "-D", "nbdkit.backend.datapath=0", "--filter=cow",
          "--filter=cacheextents", "--filter=retry", "http", url, "timeout=2000");
    } finally {
      origin.stop(0);
    }
  }

  /** Serves the command line's stack on a Unix socket, as -f -P would, while a client uses it. */
  private static void serve(Path socket, boolean write, String... args) throws IOException {
    List<String> words = new ArrayList<>(List.of("-f", "-U", socket.toString(),
        "-P", socket.resolveSibling("jnbd.pid").toString()));
    words.addAll(List.of(args));
    Options options = Options.parse(words.toArray(String[]::new));
    List<Filter> filters = new ArrayList<>();
    for (String name : options.filters) {
      filters.add(Catalog.filter(name));
    }
    Plugin plugin = Catalog.plugin(options.plugin());
    try (Session session = Session.start(Main.configure(plugin, filters, options), options);
        SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
      Client client = new Client(channel);
      client.handshake();
      client.exercise(write);
    }
  }

  /** Serves GET with or without one {@code Range: bytes=A-B}, and HEAD, as an image origin does. */
  private static void serveRange(HttpExchange exchange, byte[] image) throws IOException {
    String range = exchange.getRequestHeaders().getFirst("Range");
    int from = 0;
    int to = image.length - 1;
    int status = 200;
    Matcher m = range == null ? null : Pattern.compile("bytes=(\\d+)-(\\d*)").matcher(range);
    if (m != null && m.matches()) {
      from = Integer.parseInt(m.group(1));
      to = m.group(2).isEmpty() ? to : Math.min(to, Integer.parseInt(m.group(2)));
      status = 206;
      exchange.getResponseHeaders().set("Content-Range", "bytes " + from + "-" + to + "/" + image.length);
    }
    exchange.getResponseHeaders().set("Accept-Ranges", "bytes");
    exchange.getResponseHeaders().set("Last-Modified", "Mon, 02 Nov 2026 10:00:00 GMT");
    int length = to - from + 1;
    boolean head = exchange.getRequestMethod().equals("HEAD");
    exchange.sendResponseHeaders(status, head ? -1 : length);
    if (!head) {
      try (OutputStream body = exchange.getResponseBody()) {
        body.write(image, from, length);
      }
    }
    exchange.close();
  }

  /** Just enough of an NBD client: fixed newstyle, structured replies, the commands jnbd serves. */
  private static final class Client {
    private final SocketChannel channel;
    private final ByteBuffer header = ByteBuffer.allocateDirect(Nbd.OPTION_REPLY_HEADER_SIZE);
    private final ByteBuffer payload = ByteBuffer.allocateDirect(READ_SIZES[READ_SIZES.length - 1]);
    private final ByteBuffer requests = ByteBuffer.allocateDirect(Nbd.REQUEST_SIZE * BURST);
    private long cookie;

    Client(SocketChannel channel) {
      this.channel = channel;
    }

    void handshake() throws IOException {
      fill(header.clear().limit(18));
      write(ByteBuffer.allocate(4).putInt(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES).flip());
      option(Opt.STRUCTURED_REPLY, ByteBuffer.allocate(0));
      // GO on the default export: an empty name and no information requests.
      option(Opt.GO, ByteBuffer.allocate(6));
    }

    private void option(int option, ByteBuffer data) throws IOException {
      ByteBuffer message = ByteBuffer.allocate(Nbd.OPTION_HEADER_SIZE + data.remaining());
      message.putLong(Nbd.IHAVEOPT).putInt(option).putInt(data.remaining()).put(data);
      write(message.flip());
      while (true) {
        fill(header.clear().limit(Nbd.OPTION_REPLY_HEADER_SIZE));
        int type = header.getInt(12);
        skip(header.getInt(16));
        if (type == Rep.ACK) {
          return;
        }
        if (type != Rep.INFO) {
          throw new IOException("option " + option + " refused: reply type " + Integer.toHexString(type));
        }
      }
    }

    /**
     * Serial requests (a lone reader: the connection's reader thread runs them), then bursts
     * (parallel readers: request threads), then writes, zeroes, trims and a flush when writable.
     */
    void exercise(boolean write) throws IOException {
      long span = IMAGE_SIZE / 2;
      for (int i = 0; i < REQUESTS_PER_PASS; i++) {
        int size = READ_SIZES[i % READ_SIZES.length];
        send(Cmd.READ, (long) i * 4096 % (span - size), size, null);
        reply();
      }
      for (int i = 0; i < REQUESTS_PER_PASS; i += BURST) {
        for (int j = 0; j < BURST; j++) {
          send(Cmd.READ, (long) j * 65536, 65536, null);
        }
        for (int j = 0; j < BURST; j++) {
          reply();
        }
      }
      if (write) {
        ByteBuffer data = ByteBuffer.allocateDirect(65536);
        for (int i = 0; i < REQUESTS_PER_PASS; i++) {
          send(Cmd.WRITE, (long) i * 65536 % span, data.capacity(), data.clear());
          reply();
        }
        send(Cmd.WRITE_ZEROES, 0, 65536, null);
        reply();
        send(Cmd.TRIM, 65536, 65536, null);
        reply();
        send(Cmd.FLUSH, 0, 0, null);
        reply();
      }
      send(Cmd.DISC, 0, 0, null);
    }

    private void send(int type, long offset, int length, ByteBuffer data) throws IOException {
      requests.clear();
      new Request(0, type, cookie++, offset, length).encode(requests);
      write(requests.flip());
      if (data != null) {
        write(data);
      }
    }

    /** Reads one reply (simple, or structured chunks up to the last) and fails on an error. */
    private void reply() throws IOException {
      while (true) {
        fill(header.clear().limit(4));
        if (header.getInt(0) == Nbd.SIMPLE_REPLY_MAGIC) {
          fill(header.limit(Nbd.SIMPLE_REPLY_SIZE));
          if (header.getInt(4) != 0) {
            throw new IOException("a training request failed with NBD error " + header.getInt(4));
          }
          return;
        }
        fill(header.limit(Nbd.CHUNK_HEADER_SIZE));
        int flags = Short.toUnsignedInt(header.getShort(4));
        int type = Short.toUnsignedInt(header.getShort(6));
        int length = header.getInt(16);
        if (type == Nbd.Chunk.ERROR || type == Nbd.Chunk.ERROR_OFFSET) {
          throw new IOException("a training request failed (structured error reply)");
        }
        skip(length);
        if ((flags & Nbd.Chunk.FLAG_DONE) != 0) {
          return;
        }
      }
    }

    private void skip(int length) throws IOException {
      for (int left = length; left > 0; ) {
        int n = Math.min(left, payload.capacity());
        fill(payload.clear().limit(n));
        left -= n;
      }
    }

    private void fill(ByteBuffer buffer) throws IOException {
      while (buffer.hasRemaining()) {
        if (channel.read(buffer) < 0) {
          throw new EOFException("the training server closed the connection");
        }
      }
    }

    private void write(ByteBuffer buffer) throws IOException {
      while (buffer.hasRemaining()) {
        channel.write(buffer);
      }
    }
  }
}
