package io.jnbd.plugins.http;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** When the server stops, the plugin ends its keep-alive connections to the origin with a normal close. */
class OriginCloseTest {
  private static final int SIZE = 4096;

  @Test
  void unloadClosesOriginConnectionsWithAFinNotAReset() throws Exception {
    try (ServerSocket listener = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
      CompletableFuture<String> howItEnded = CompletableFuture.supplyAsync(() -> serveUntilClosed(listener));
      HttpPlugin plugin = new HttpPlugin();
      plugin.config("url", "http://127.0.0.1:" + listener.getLocalPort() + "/disk.img");
      plugin.config("connections", "1");
      plugin.configComplete();
      plugin.open(true, "").pread(ByteBuffer.allocate(512), 0);
      plugin.unload();
      assertThat(howItEnded.get(30, TimeUnit.SECONDS)).isEqualTo("end of stream");
    }
  }

  /** Answers HEAD and ranged GETs on one keep-alive connection, then reports how the client left. */
  private static String serveUntilClosed(ServerSocket listener) {
    try (Socket socket = listener.accept()) {
      BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.ISO_8859_1));
      OutputStream out = socket.getOutputStream();
      while (true) {
        String requestLine = in.readLine();
        if (requestLine == null) {
          return "end of stream";
        }
        long first = 0;
        long last = SIZE - 1;
        for (String header = in.readLine(); header != null && !header.isEmpty(); header = in.readLine()) {
          if (header.toLowerCase().startsWith("range: bytes=")) {
            String[] range = header.substring("range: bytes=".length()).split("-");
            first = Long.parseLong(range[0].trim());
            last = Math.min(SIZE - 1, Long.parseLong(range[1].trim()));
          }
        }
        boolean head = requestLine.startsWith("HEAD");
        long length = head ? SIZE : last - first + 1;
        String status = head ? "200 OK" : "206 Partial Content";
        String response = "HTTP/1.1 " + status + "\r\nAccept-Ranges: bytes\r\nContent-Length: " + length + "\r\n"
            + (head ? "" : "Content-Range: bytes " + first + "-" + last + "/" + SIZE + "\r\n") + "\r\n";
        out.write(response.getBytes(StandardCharsets.ISO_8859_1));
        if (!head) {
          out.write(new byte[(int) length]);
        }
        out.flush();
      }
    } catch (IOException e) {
      return "failed: " + e.getMessage();
    }
  }

}
