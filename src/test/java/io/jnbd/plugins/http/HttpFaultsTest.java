package io.jnbd.plugins.http;

import static io.jnbd.testing.Exports.read;
import static io.jnbd.testing.TestData.randomBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.Headers;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.testing.CloseLater;
import io.jnbd.testing.Layers;
import io.jnbd.testing.OriginGate;
import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.RangeOrigin.Fault;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import java.util.random.RandomGenerator;
import java.util.stream.Stream;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The http plugin when its origin goes away for a while or changes under it: what is retried,
 * for how long, how long it waits, and that a changed image fails reads instead of mixing into
 * them. Time is a {@link FakePacer}, so no test sleeps through an outage.
 */
class HttpFaultsTest {
  private static final int SIZE = 1 << 20;
  private static final int CHUNK = 64 * 1024;
  private static final byte[] DATA = randomBytes(SIZE, 42);
  private static final byte[] NEW_DATA = randomBytes(SIZE, 43);

  @AutoClose private final CloseLater closeLater = new CloseLater();
  private final FakePacer pacer = new FakePacer();
  private RandomGenerator random = new Random(1);

  private RangeOrigin origin() {
    return closeLater.add(RangeOrigin.http(DATA));
  }

  private OriginGate gate(RangeOrigin origin) {
    return closeLater.add(new OriginGate(origin.port()));
  }

  /** An export of a plugin whose retries run on {@link #pacer}; each argument is one key=value. */
  private Export open(String... keyValues) throws IOException {
    HttpPlugin plugin = new HttpPlugin(pacer, random);
    closeLater.add(plugin::unload);
    Layers.configure(plugin, keyValues).configComplete();
    return plugin.open(true, "");
  }

  private static void assertReadsBack(Export export, long offset, int length) throws IOException {
    assertThat(read(export, offset, length)).isEqualTo(Arrays.copyOfRange(DATA, (int) offset, (int) offset + length));
  }

  private static void assertEio(ThrowingCallable read, String... messageParts) {
    assertThatThrownBy(read).isInstanceOfSatisfying(NbdException.class, e -> {
      assertThat(e.errno()).isEqualTo(Errno.EIO);
      assertThat(e.getMessage()).contains(messageParts);
    });
  }

  /** The ways an origin goes away. */
  enum Outage {
    REFUSED(OriginGate::refuse),
    RESET(OriginGate::reset),
    UNAVAILABLE(gate -> gate.answer("503 Service Unavailable")),
    BAD_GATEWAY(gate -> gate.answer("502 Bad Gateway")),
    GATEWAY_TIMEOUT(gate -> gate.answer("504 Gateway Timeout"));

    final Consumer<OriginGate> begin;

    Outage(Consumer<OriginGate> begin) {
      this.begin = begin;
    }
  }

  @ParameterizedTest
  @EnumSource(Outage.class)
  void aCopyAcrossATwoSecondOutageIsByteIdentical(Outage outage) throws Exception {
    OriginGate gate = gate(origin());
    Export export = open("url=" + gate.url("/disk.img"), "connections=4");
    byte[] copy = new byte[SIZE];
    int chunks = SIZE / CHUNK;
    int beforeOutage = 5;
    for (int i = 0; i < beforeOutage; i++) {
      System.arraycopy(read(export, (long) i * CHUNK, CHUNK), 0, copy, i * CHUNK, CHUNK);
    }
    outage.begin.accept(gate);
    pacer.at(Duration.ofSeconds(2), gate::open);
    try (ExecutorService readers = Executors.newVirtualThreadPerTaskExecutor()) {
      List<Callable<byte[]>> rest = new ArrayList<>();
      for (int i = beforeOutage; i < chunks; i++) {
        long offset = (long) i * CHUNK;
        rest.add(() -> read(export, offset, CHUNK));
      }
      List<Future<byte[]>> results = readers.invokeAll(rest);
      for (int i = beforeOutage; i < chunks; i++) {
        System.arraycopy(results.get(i - beforeOutage).get(), 0, copy, i * CHUNK, CHUNK);
      }
    }
    assertThat(copy).isEqualTo(DATA);
    assertThat(pacer.elapsed()).isGreaterThanOrEqualTo(Duration.ofSeconds(2));
  }

  @ParameterizedTest
  @EnumSource(value = Outage.class, names = {"REFUSED", "UNAVAILABLE"})
  void openingRetriesTheSizeProbe(Outage outage) throws IOException {
    OriginGate gate = gate(origin());
    outage.begin.accept(gate);
    pacer.at(Duration.ofSeconds(2), gate::open);
    Export export = open("url=" + gate.url("/disk.img"));
    assertThat(export.size()).isEqualTo(SIZE);
    assertReadsBack(export, 1000, 1000);
    assertThat(pacer.elapsed()).isGreaterThanOrEqualTo(Duration.ofSeconds(2));
  }

  @Test
  void resetInTheMiddleOfABodyIsRetried() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url());
    origin.failNext(Fault.RESET_MID_BODY, 2);
    assertReadsBack(export, 4096, 200_000);
    assertThat(pacer.sleeps).hasSize(2);
  }

  @Test
  void aNotFoundIsNotRetriedEvenAfterAnOutage() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url());
    int before = origin.rangedGets.get();
    origin.failNext(Fault.STATUS_503, 1);
    origin.failNext(Fault.STATUS_404, 1);
    assertEio(() -> read(export, 0, 4096), "HTTP 404");
    assertThat(origin.rangedGets.get() - before).isEqualTo(2);
    assertThat(pacer.sleeps).hasSize(1);
  }

  @Test
  void retriesStopAtTheDeadlineWhichIsTheTimeout() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url(), "timeout=5");
    origin.failNext(Fault.STATUS_503, 10_000);
    assertEio(() -> read(export, 0, 4096), "HTTP 503", "gave up after");
    assertThat(pacer.elapsed()).isEqualTo(Duration.ofSeconds(5));
  }

  @Test
  void withoutTimeoutRetriesStopAfterThirtySeconds() throws IOException {
    OriginGate gate = gate(origin());
    Export export = open("url=" + gate.url("/disk.img"));
    gate.refuse();
    assertEio(() -> read(export, 0, 4096), "gave up after");
    assertThat(pacer.elapsed()).isEqualTo(Duration.ofSeconds(30));
  }

  @Test
  void waitsGrowExponentiallyFrom100MillisecondsToTwoSecondsWithFullJitter() throws IOException {
    RangeOrigin origin = origin();
    // Always the top of the jitter range: the waits show their ceilings.
    random = () -> -1L;
    Export export = open("url=" + origin.url());
    origin.failNext(Fault.STATUS_503, 7);
    assertReadsBack(export, 0, 4096);
    assertThat(pacer.sleeps).extracting(Duration::toMillis).containsExactly(99L, 199L, 399L, 799L, 1599L, 1999L, 1999L);

    // And the bottom of the range: no wait at all.
    pacer.sleeps.clear();
    random = () -> 0L;
    Export another = open("url=" + origin.url());
    origin.failNext(Fault.STATUS_503, 3);
    assertReadsBack(another, 0, 4096);
    assertThat(pacer.sleeps).containsExactly(Duration.ZERO, Duration.ZERO, Duration.ZERO);
  }

  @Test
  void retryAfterInSecondsIsHonoured() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url());
    origin.retryAfter = "3";
    origin.failNext(Fault.STATUS_503, 2);
    origin.failNext(Fault.STATUS_429, 1);
    assertReadsBack(export, 0, 4096);
    assertThat(pacer.sleeps).containsExactly(Duration.ofSeconds(3), Duration.ofSeconds(3), Duration.ofSeconds(3));
  }

  @Test
  void retryAfterAsADateCountsFromTheServersDate() throws IOException {
    OriginGate gate = gate(origin());
    gate.answer("503 Service Unavailable", "Date: Wed, 01 Jan 2031 00:00:00 GMT", "Retry-After: Wed, 01 Jan 2031 00:00:04 GMT");
    pacer.at(Duration.ofSeconds(4), gate::open);
    Export export = open("url=" + gate.url("/disk.img"));
    assertReadsBack(export, 0, 4096);
    assertThat(pacer.sleeps).containsExactly(Duration.ofSeconds(4));
  }

  @Test
  void retryAfterPastTheDeadlineFailsAtOnce() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url(), "timeout=5");
    origin.retryAfter = "60";
    origin.failNext(Fault.STATUS_503, 1);
    assertEio(() -> read(export, 0, 4096), "HTTP 503", "60 s");
    assertThat(pacer.sleeps).isEmpty();
  }

  @Test
  void anUnchangedImageIsReadWithIfMatchAndNeverFails() throws Exception {
    RangeOrigin origin = origin();
    origin.change(DATA, "\"v1\"", "Wed, 01 Jan 2025 00:00:00 GMT");
    Export export = open("url=" + origin.url(), "connections=4");
    try (ExecutorService readers = Executors.newVirtualThreadPerTaskExecutor()) {
      List<Future<?>> reads = new ArrayList<>();
      for (int i = 0; i < SIZE / CHUNK; i++) {
        long offset = (long) i * CHUNK;
        reads.add(readers.submit(() -> {
          assertReadsBack(export, offset, CHUNK);
          return null;
        }));
      }
      for (Future<?> read : reads) {
        read.get();
      }
    }
    List<Headers> ranged = origin.seen.stream().filter(h -> h.getFirst("Range") != null && !"bytes=0-0".equals(h.getFirst("Range"))).toList();
    assertThat(ranged).hasSize(SIZE / CHUNK).allSatisfy(h -> assertThat(h.getFirst("If-Match")).isEqualTo("\"v1\""));
  }

  /**
   * How an origin describes its image before and after a change: the validators it sends, whether
   * it honours If-Match, and how large the new image is.
   */
  static Stream<Arguments> changes() {
    String monday = "Mon, 06 Jan 2025 00:00:00 GMT";
    String tuesday = "Tue, 07 Jan 2025 00:00:00 GMT";
    return Stream.of(
        Arguments.of("strong ETag, If-Match honoured", "\"v1\"", monday, "\"v2\"", monday, true, SIZE),
        Arguments.of("strong ETag, If-Match ignored", "\"v1\"", monday, "\"v2\"", monday, false, SIZE),
        Arguments.of("weak ETag", "W/\"v1\"", null, "W/\"v2\"", null, true, SIZE),
        Arguments.of("Last-Modified only", null, monday, null, tuesday, true, SIZE),
        Arguments.of("no validator, new size", null, null, null, null, true, SIZE + CHUNK));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("changes")
  void aChangedImageFailsReadsWithEioInsteadOfMixingVersions(String name, String etag, String lastModified,
      String newEtag, String newLastModified, boolean honourIfMatch, int newSize) throws IOException {
    RangeOrigin origin = origin();
    origin.honourIfMatch = honourIfMatch;
    origin.change(DATA, etag, lastModified);
    Export export = open("url=" + origin.url());
    assertReadsBack(export, 0, CHUNK);
    origin.change(Arrays.copyOf(NEW_DATA, newSize), newEtag, newLastModified);
    assertEio(() -> read(export, CHUNK, CHUNK), "changed since it was opened");
    assertEio(() -> read(export, 0, CHUNK), "changed since it was opened");
    assertThat(pacer.sleeps).as("a change is not retried").isEmpty();
    if (etag != null && etag.startsWith("W/")) {
      assertThat(origin.seen).allSatisfy(h -> assertThat(h.getFirst("If-Match")).isNull());
    }
  }
}
