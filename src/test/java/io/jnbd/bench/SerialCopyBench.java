package io.jnbd.bench;

import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.filters.cache.CacheFilter;
import io.jnbd.filters.readahead.ReadaheadFilter;
import io.jnbd.server.ServerConfig;
import io.jnbd.server.Stack;
import io.jnbd.testing.SlowDisk;
import io.jnbd.testing.TestServer;
import io.jnbd.testing.Tools;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Not a test: times a serial nbdcopy ({@code --requests=1 --connections=1}) of a SlowDisk with a
 * fixed delay per read, with and without readahead and cache, and seeded random 4 KiB reads.
 * Run: {@code java -cp ... io.jnbd.bench.SerialCopyBench SIZE_MIB DELAY_MS RANDOM_READS}.
 */
public final class SerialCopyBench {
  public static void main(String[] args) throws Exception {
    int sizeMib = args.length > 0 ? Integer.parseInt(args[0]) : 256;
    int delay = args.length > 1 ? Integer.parseInt(args[1]) : 20;
    int randomReads = args.length > 2 ? Integer.parseInt(args[2]) : 500;
    String only = args.length > 3 ? args[3] : "";
    SlowDisk disk = new SlowDisk(sizeMib << 20, delay, 1);
    String[][] setups = {
      {"plain"}, {"readahead+cache", "cache-max-size=64M"}, {"readahead (own cache)"},
    };
    for (String[] setup : setups) {
      if (!only.isEmpty() && !setup[0].startsWith(only)) {
        continue;
      }
      for (int requestSize : new int[] {256 * 1024, 64 * 1024}) {
        if (setup[0].equals("plain") && requestSize < 256 * 1024) {
          // Four times the 256 KiB time: every request pays the delay.
          continue;
        }
        disk.preads.set(0);
        disk.bytes.set(0);
        try (TestServer server = new TestServer(filters(setup), disk, ServerConfig.defaults())) {
          long started = System.nanoTime();
          Tools.run(List.of("nbdcopy", "--requests=1", "--connections=1", "--request-size=" + requestSize, server.uri(), "null:"), Map.of(), 600)
              .assertSuccess();
          double seconds = (System.nanoTime() - started) / 1e9;
          System.out.printf("%-22s %4d KiB requests: %6.2f s, %7.1f MiB/s, origin reads %d, origin bytes %.3fx%n",
              setup[0], requestSize >> 10, seconds, sizeMib / seconds, disk.preads.get(), disk.bytes.get() / (double) (sizeMib << 20));
        }
      }
      if (randomReads > 0) {
        disk.preads.set(0);
        Stack stack = new Stack(filters(setup), disk);
        try (Export export = stack.open(true, "")) {
          Random random = new Random(5);
          long started = System.nanoTime();
          ByteBuffer buffer = ByteBuffer.allocate(4096);
          for (int i = 0; i < randomReads; i++) {
            export.pread(buffer.clear(), random.nextLong((sizeMib << 20) / 4096) * 4096);
          }
          double seconds = (System.nanoTime() - started) / 1e9;
          System.out.printf("%-22s %d random 4 KiB reads: %.2f s, origin reads %d%n", setup[0], randomReads, seconds, disk.preads.get());
        } finally {
          stack.unload();
        }
      }
    }
  }

  private static List<Filter> filters(String[] setup) {
    List<Filter> filters = new ArrayList<>();
    if (setup[0].startsWith("readahead")) {
      filters.add(new ReadaheadFilter());
    }
    if (setup[0].contains("cache") && !setup[0].contains("own")) {
      CacheFilter cache = new CacheFilter();
      for (int i = 1; i < setup.length; i++) {
        String[] kv = setup[i].split("=", 2);
        cache.config(kv[0], kv[1]);
      }
      filters.add(cache);
    }
    filters.forEach(Filter::configComplete);
    return filters;
  }
}
