package io.jnbd.bench;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Plugin;
import io.jnbd.filters.cache.CacheFilter;
import io.jnbd.filters.readahead.ReadaheadFilter;
import io.jnbd.server.ServerConfig;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Not a test: copies a large image whose bytes are computed from their offset (so the image
 * itself costs no memory) through readahead and cache, with a delay per read, and prints the
 * time, the origin traffic and the process's peak RSS. Args: SIZE_MIB DELAY_MS CLIENT
 * (nbdcopy-serial | nbdcopy | qemu-img).
 */
public final class LargeImageBench {
  public static void main(String[] args) throws Exception {
    long size = Long.parseLong(args[0]) << 20;
    long delay = Long.parseLong(args[1]);
    String client = args[2];
    AtomicLong reads = new AtomicLong();
    AtomicLong bytes = new AtomicLong();
    Plugin image = new Plugin() {
      public String name() { return "pattern"; }
      public String description() { return "bytes computed from offsets, slowly"; }
      public boolean config(String key, String value) { return false; }
      public Export open(boolean readOnly, String exportName) {
        return new Export() {
          public long size() { return size; }
          public boolean canMultiConn() { return true; }
          public void pread(ByteBuffer buffer, long offset) throws InterruptedIOException {
            reads.incrementAndGet();
            bytes.addAndGet(buffer.remaining());
            try {
              Thread.sleep(delay);
            } catch (InterruptedException e) {
              throw new InterruptedIOException();
            }
            while (buffer.hasRemaining()) {
              buffer.put((byte) (offset++ * 31 >>> 7));
            }
          }
        };
      }
    };
    ReadaheadFilter readahead = new ReadaheadFilter();
    CacheFilter cache = new CacheFilter();
    cache.config("cache-max-size", "64M");
    List<Filter> filters = new ArrayList<>(List.of(readahead, cache));
    filters.forEach(Filter::configComplete);
    try (TestServer server = new TestServer(filters, image, ServerConfig.defaults())) {
      List<String> command = switch (client) {
        case "nbdcopy-serial" -> List.of("nbdcopy", "--requests=1", "--connections=1", server.uri(), "null:");
        case "nbdcopy" -> List.of("nbdcopy", server.uri(), "null:");
        default -> List.of("qemu-img", "convert", "-O", "raw", server.uri(), "/tmp/jnbd-filters-bench.raw");
      };
      long started = System.nanoTime();
      Tools.run(command, Map.of(), 600).assertSuccess();
      double seconds = (System.nanoTime() - started) / 1e9;
      String hwm = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("VmHWM")).findFirst().orElse("?");
      System.out.printf("%s %d MiB, %d ms per read: %.2f s, %.1f MiB/s, origin reads %d, origin bytes %.3fx, %s%n",
          client, size >> 20, delay, seconds, (size >> 20) / seconds, reads.get(), bytes.get() / (double) size, hwm.replaceAll("\\s+", " "));
    }
  }
}
