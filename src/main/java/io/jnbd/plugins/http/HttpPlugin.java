package io.jnbd.plugins.http;

import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Parameter;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import io.jnbd.api.ThreadModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Random;
import java.util.random.RandomGenerator;

/**
 * Serves a remote disk image over HTTP(S) as a read-only export: every NBD read becomes one HTTP
 * Range GET. Accepts nbdkit curl plugin command lines (see {@link CurlPlugin}).
 *
 * <p>All NBD connections share one {@link RangeClient}, and so one pool of HTTP connections and
 * one cached size; it lives from {@link #configComplete()} to {@link #unload()}.
 */
public class HttpPlugin implements Plugin {
  /**
   * Every read costs an HTTP round trip, so fewer, larger reads win: nbdcopy raises its request
   * size to this, and copied 3x faster at 1 MiB than at 64 KiB against a 20 ms origin (see
   * docs/plugins/http.md). Small random reads are unaffected: minimum stays 1.
   */
  static final int PREFERRED_BLOCK_SIZE = 1 << 20;

  private final HttpSettings settings = new HttpSettings();
  private final RetryPolicy.Pacer retryPacer;
  private final RandomGenerator retryJitter;
  private RangeClient client;

  public HttpPlugin() {
    this(RetryPolicy.Pacer.SYSTEM, new Random());
  }

  /** With the time and randomness retries use given: tests run outages through it without waiting. */
  HttpPlugin(RetryPolicy.Pacer retryPacer, RandomGenerator retryJitter) {
    this.retryPacer = retryPacer;
    this.retryJitter = retryJitter;
  }

  @Override
  public String name() {
    return "http";
  }

  @Override
  public String description() {
    return "serve a remote disk image over HTTP(S) with range requests (read-only)";
  }

  @Override
  public String magicConfigKey() {
    return "url";
  }

  @Override
  public List<Parameter> parameters() {
    return HttpSettings.PARAMETERS;
  }

  @Override
  public boolean config(String key, String value) {
    if (!settings.set(name(), key, value)) {
      throw new ConfigException(name() + ": unknown parameter '" + key + "'");
    }
    return true;
  }

  @Override
  public void configComplete() {
    settings.complete(name());
    try {
      client = new ApacheRangeClient(settings, new RetryPolicy(settings.retryDeadline(), retryPacer, retryJitter));
    } catch (IOException e) {
      throw new ConfigException(name() + ": " + e.getMessage(), e);
    }
  }

  @Override
  public ThreadModel threadModel() {
    return ThreadModel.PARALLEL;
  }

  @Override
  public Export open(boolean readOnly, String exportName) throws IOException {
    long size = client.size();
    RangeClient shared = client;
    return new Export() {
      @Override
      public long size() {
        return size;
      }

      @Override
      public void pread(ByteBuffer buffer, long offset) throws IOException {
        shared.read(buffer, offset);
      }

      // Reads that meet a changed image fail rather than return its bytes, so every connection
      // sees the same image.
      @Override
      public boolean canMultiConn() {
        return true;
      }

      @Override
      public Support canCache() {
        return Support.NONE;
      }

      @Override
      public BlockSize blockSize() {
        return new BlockSize(1, PREFERRED_BLOCK_SIZE, BlockSize.DEFAULT.maximum());
      }
    };
  }

  @Override
  public void unload() {
    if (client != null) {
      client.close();
    }
  }
}
