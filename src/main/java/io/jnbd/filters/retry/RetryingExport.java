package io.jnbd.filters.retry;

import io.jnbd.api.BlockSize;
import io.jnbd.api.Export;
import io.jnbd.api.Extents;
import io.jnbd.api.ReadData;
import io.jnbd.api.Support;
import io.jnbd.filters.retry.Request.Operation;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The part the retry and retry-request filters share: every data operation runs through one
 * retry loop, and every attempt starts from the request as the client sent it (a read refills
 * its buffer from the start, a write resends its whole payload, extents are collected afresh),
 * whatever a failed attempt left behind. Subclasses decide what an attempt runs against and how
 * to recover between attempts. Size and capabilities stay what the first export offered.
 */
abstract class RetryingExport implements Export {
  private static final Logger log = LoggerFactory.getLogger(RetryingExport.class);

  /** One attempt of a request against the export below. */
  @FunctionalInterface
  interface Attempt {
    void run(Export below) throws IOException;
  }

  /**
   * A failed attempt.
   *
   * @param error what the layer below reported
   * @param generation which export below it failed on, for subclasses that replace it
   */
  record Failure(IOException error, long generation) {}

  private final String filter;
  private final RetryPolicy policy;
  private final Offer offer;

  RetryingExport(String filter, RetryPolicy policy, Offer offer) {
    this.filter = filter;
    this.policy = policy;
    this.offer = offer;
  }

  /** Runs the attempt once: null if it succeeded, else how it failed. Throws to fail for good. */
  abstract Failure attempt(Request request, Attempt attempt) throws IOException;

  /**
   * Gets ready for the next attempt after {@code failure}, waiting {@code delay} if that is
   * the way; returns whether it waited, so the next wait grows only after a real one.
   */
  abstract boolean recover(Failure failure, Duration delay) throws InterruptedException;

  final void retrying(Request request, Attempt attempt) throws IOException {
    Duration delay = policy.delay();
    for (int retry = 1; ; retry++) {
      Failure failure = attempt(request, attempt);
      if (failure == null) {
        return;
      }
      if (!request.worthRetrying(failure.error())) {
        throw failure.error();
      }
      if (retry > policy.retries()) {
        log.debug("{}: {} failed after {} retries: {}", filter, request, policy.retries(), failure.error().getMessage());
        throw failure.error();
      }
      log.debug("{}: {} failed ({}); retry {} of {}", filter, request, failure.error().getMessage(), retry, policy.retries());
      try {
        if (recover(failure, delay)) {
          delay = policy.after(delay);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        failure.error().addSuppressed(new InterruptedIOException("retry abandoned: the server is stopping"));
        throw failure.error();
      }
    }
  }

  @Override
  public void pread(ByteBuffer buffer, long offset) throws IOException {
    int start = buffer.position();
    retrying(new Request(Operation.PREAD, offset, buffer.remaining(), 0), below -> {
      buffer.position(start);
      below.pread(buffer, offset);
    });
  }

  /**
   * Retried as {@link #pread} is: a readData that fails is asked again. An attempt that answers
   * null leaves the READ to {@code pread}, which retries in its turn. So does a file region: the
   * file is read only as the reply goes out, after the retries are over, where a failed read
   * could no longer be retried.
   */
  @Override
  public ReadData readData(long offset, int length) throws IOException {
    ReadData[] handedOver = new ReadData[1];
    retrying(new Request(Operation.PREAD, offset, length, 0),
        below -> handedOver[0] = keepingBelow(alreadyRead(below.readData(offset, length))));
    return handedOver[0];
  }

  /** {@code handedOver} unless it is a file region, which is given back: null then. */
  private static ReadData alreadyRead(ReadData handedOver) {
    if (handedOver instanceof ReadData.FileRegion region) {
      region.close();
      return null;
    }
    return handedOver;
  }

  /**
   * What the export below handed over, made to keep that export open until the server gives it
   * back; called in the attempt that got it.
   */
  ReadData keepingBelow(ReadData handedOver) {
    return handedOver;
  }

  @Override
  public void pwrite(ByteBuffer buffer, long offset, int flags) throws IOException {
    int start = buffer.position();
    retrying(new Request(Operation.PWRITE, offset, buffer.remaining(), flags), below -> {
      buffer.position(start);
      below.pwrite(buffer, offset, flags);
    });
  }

  @Override
  public void flush() throws IOException {
    retrying(new Request(Operation.FLUSH, 0, 0, 0), Export::flush);
  }

  @Override
  public void trim(long offset, long length, int flags) throws IOException {
    retrying(new Request(Operation.TRIM, offset, length, flags), below -> below.trim(offset, length, flags));
  }

  @Override
  public void zero(long offset, long length, int flags) throws IOException {
    retrying(new Request(Operation.ZERO, offset, length, flags), below -> below.zero(offset, length, flags));
  }

  @Override
  public void extents(long offset, long length, int flags, Extents extents) throws IOException {
    Extents[] collected = new Extents[1];
    retrying(new Request(Operation.EXTENTS, offset, length, flags), below -> {
      collected[0] = new Extents(extents.next(), extents.end());
      below.extents(offset, length, flags, collected[0]);
    });
    Extents found = collected[0];
    long at = found.start();
    for (int i = 0; i < found.count(); i++) {
      extents.add(at, found.length(i), found.type(i));
      at += found.length(i);
    }
  }

  @Override
  public void cache(long offset, long length) throws IOException {
    retrying(new Request(Operation.CACHE, offset, length, 0), below -> below.cache(offset, length));
  }

  @Override
  public long size() {
    return offer.size();
  }

  @Override
  public boolean canWrite() {
    return offer.write();
  }

  @Override
  public boolean canFlush() {
    return offer.flush();
  }

  @Override
  public Support canFua() {
    return offer.fua();
  }

  @Override
  public boolean canTrim() {
    return offer.trim();
  }

  @Override
  public Support canZero() {
    return offer.zero();
  }

  @Override
  public boolean canFastZero() {
    return offer.fastZero();
  }

  @Override
  public boolean canExtents() {
    return offer.extents();
  }

  @Override
  public Support canCache() {
    return offer.cache();
  }

  @Override
  public boolean canMultiConn() {
    return offer.multiConn();
  }

  @Override
  public boolean isRotational() {
    return offer.rotational();
  }

  @Override
  public BlockSize blockSize() {
    return offer.blockSize();
  }
}
