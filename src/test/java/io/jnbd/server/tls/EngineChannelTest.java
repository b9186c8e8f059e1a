package io.jnbd.server.tls;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.testing.TestPki;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The JDK engine's channel between a server and a client in memory: what a READ reply costs in
 * system calls, and when its first records leave.
 */
class EngineChannelTest {
  /** A structured reply's chunk header and offset, before the data of a READ. */
  private static final int CHUNK_HEADER = 20 + 8;

  @TempDir Path dir;
  private Direction toClient;
  private TlsChannel server;
  private TlsChannel client;

  /**
   * One direction of an in-memory connection: each write is taken whole, as one message, and
   * counted, and the reply being sent is looked at: how much of its data the server had taken
   * for encryption when each message went out.
   */
  private static final class Direction implements ReadableByteChannel, WritableByteChannel {
    private final BlockingQueue<ByteBuffer> messages = new LinkedBlockingQueue<>();
    private final AtomicInteger writes = new AtomicInteger();
    private final List<Integer> dataTakenAtWrites = new CopyOnWriteArrayList<>();
    private volatile ByteBuffer replyData;
    private ByteBuffer current = ByteBuffer.allocate(0);

    @Override
    public int write(ByteBuffer src) {
      ByteBuffer data = replyData;
      if (data != null) {
        dataTakenAtWrites.add(data.position());
      }
      int n = src.remaining();
      messages.add(ByteBuffer.allocate(n).put(src).flip());
      writes.incrementAndGet();
      return n;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
      if (!current.hasRemaining()) {
        try {
          current = messages.poll(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          throw new InterruptedIOException();
        }
        if (current == null) {
          throw new IOException("nothing came in 30 s");
        }
      }
      int n = Math.min(dst.remaining(), current.remaining());
      dst.put(current.slice(current.position(), n));
      current.position(current.position() + n);
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }

  @BeforeEach
  void connect() throws Exception {
    Path pki = TestPki.certificates(dir.resolve("pki"), "engine channel test CA");
    X509Handshaker handshaker = X509Handshaker.load(List.of(pki), false);
    toClient = new Direction();
    Direction toServer = new Direction();
    CompletableFuture<TlsChannel> accepted = CompletableFuture.supplyAsync(() -> {
      try {
        return handshaker.handshake(toServer, toClient, ByteBuffer.allocate(0));
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    });
    client = EngineChannel.handshake(clientEngine(pki), toClient, toServer, ByteBuffer.allocate(0));
    server = accepted.get(30, TimeUnit.SECONDS);
  }

  private static SSLEngine clientEngine(Path pki) throws Exception {
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(null, TestPki.trusting(pki), null);
    SSLEngine engine = context.createSSLEngine("localhost", 10809);
    engine.setUseClientMode(true);
    return engine;
  }

  /** Sends a READ reply of {@code length} bytes of data; returns the system calls (writes below) it took. */
  private int reply(int length) throws IOException {
    byte[] header = new byte[CHUNK_HEADER];
    byte[] data = new byte[length];
    new Random(length).nextBytes(header);
    new Random(~length).nextBytes(data);
    int before = toClient.writes.get();
    ByteBuffer replyData = ByteBuffer.allocateDirect(length).put(data).flip();
    toClient.dataTakenAtWrites.clear();
    toClient.replyData = replyData;
    server.write(new ByteBuffer[] {ByteBuffer.wrap(header), replyData});
    toClient.replyData = null;
    int writes = toClient.writes.get() - before;
    ByteBuffer received = ByteBuffer.allocate(CHUNK_HEADER + length);
    while (received.hasRemaining()) {
      client.read(received);
    }
    assertThat(received.flip().slice(0, CHUNK_HEADER)).isEqualTo(ByteBuffer.wrap(header));
    assertThat(received.slice(CHUNK_HEADER, length)).isEqualTo(ByteBuffer.wrap(data));
    return writes;
  }

  @Test
  void aReadReplyOf256KiBGoesOutInFourSystemCalls() throws IOException {
    // 16 full records and a 17th of the header's 28 bytes: 4 + 4 + 4 + (4 and the short one).
    assertThat(reply(256 << 10)).isEqualTo(4);
  }

  @Test
  void theFirstRecordsOfAReplyLeaveBeforeTheRestIsEncrypted() throws IOException {
    reply(256 << 10);
    // So that the client decrypts them while the server encrypts the rest: the first write
    // carries 4 records (the JDK fills each with a little under 16 KiB), the last one the end.
    assertThat(toClient.dataTakenAtWrites).hasSize(4).last().isEqualTo(256 << 10);
    assertThat(toClient.dataTakenAtWrites.getFirst()).isBetween(3 * 16384, 4 * 16384);
  }

  @Test
  void largerRepliesGoOutInBatchesOf4RecordsAndArriveWhole() throws IOException {
    // 2 MiB and the header: 128 full records and a short one, 129 in all.
    assertThat(reply(2 << 20)).isEqualTo(32);
    assertThat(reply(1)).isEqualTo(1);
    // 6 full records and a seventh of 1724 bytes.
    assertThat(reply(100_000)).isEqualTo(2);
  }
}
