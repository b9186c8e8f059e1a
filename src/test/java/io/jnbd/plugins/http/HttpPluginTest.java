package io.jnbd.plugins.http;

import static io.jnbd.testing.Exports.read;
import static io.jnbd.testing.TestData.randomBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpServer;
import io.jnbd.api.BlockSize;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.api.Plugin;
import io.jnbd.api.Support;
import io.jnbd.server.Catalog;
import io.jnbd.testing.CloseLater;
import io.jnbd.testing.ForwardingProxy;
import io.jnbd.testing.Layers;
import io.jnbd.testing.RangeOrigin;
import io.jnbd.testing.RangeOrigin.Fault;
import io.jnbd.testing.SelfSignedTls;
import io.jnbd.testing.UnixBridge;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The http plugin against a real in-process HTTP(S) origin, read through its Export. */
class HttpPluginTest {
  private static final int SIZE = 1 << 20;
  private static final byte[] DATA = randomBytes(SIZE, 42);

  @TempDir Path dir;
  @AutoClose private final CloseLater closeLater = new CloseLater();

  private RangeOrigin origin() {
    return closeLater.add(RangeOrigin.http(DATA));
  }

  /** A configured plugin (unloaded after the test); each argument is one key=value. */
  private HttpPlugin plugin(String... keyValues) {
    HttpPlugin plugin = Layers.configure(new HttpPlugin(), keyValues);
    plugin.configComplete();
    closeLater.add(plugin::unload);
    return plugin;
  }

  private Export open(String... keyValues) throws IOException {
    return plugin(keyValues).open(true, "");
  }

  private static void assertReadsBack(Export export, long offset, int length) throws IOException {
    assertThat(read(export, offset, length)).isEqualTo(Arrays.copyOfRange(DATA, (int) offset, (int) offset + length));
  }

  @Test
  void readsRangesExactlyAndIsReadOnly() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url(), "connections=2", "tcp-keepalive=true", "tcp-nodelay=false",
        "connect-timeout=5", "protocols=http");
    assertThat(export.size()).isEqualTo(SIZE);
    assertReadsBack(export, 0, 4096);
    assertReadsBack(export, 12345, 99999);
    assertReadsBack(export, SIZE - 1, 1);
    ByteBuffer direct = ByteBuffer.allocateDirect(200_000);
    export.pread(direct, 500_000);
    byte[] copy = new byte[200_000];
    direct.flip().get(copy);
    assertThat(copy).isEqualTo(Arrays.copyOfRange(DATA, 500_000, 700_000));
    assertThat(export.canWrite()).isFalse();
    assertThat(export.canMultiConn()).isTrue();
    assertThat(export.canExtents()).isFalse();
    assertThat(export.canCache()).isEqualTo(Support.NONE);
    assertThat(export.blockSize()).isEqualTo(new BlockSize(1, 1 << 20, BlockSize.DEFAULT.maximum()));
    assertThatThrownBy(() -> export.pwrite(ByteBuffer.allocate(1), 0, 0))
        .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EROFS));
  }

  @Test
  void parallelReadsShareTheConnectionPool() throws Exception {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url(), "connections=3");
    try (ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
      List<Future<byte[]>> reads = new ArrayList<>();
      for (int i = 0; i < 32; i++) {
        long offset = i * 30_000L;
        reads.add(threads.submit(() -> read(export, offset, 30_000)));
      }
      for (int i = 0; i < reads.size(); i++) {
        assertThat(reads.get(i).get()).isEqualTo(Arrays.copyOfRange(DATA, i * 30_000, i * 30_000 + 30_000));
      }
    }
  }

  @Test
  void openTakesOneRoundTripWhenTheRangeProbeGivesTheSize() throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url());
    assertThat(export.size()).isEqualTo(SIZE);
    assertThat(origin.methods).containsExactly("GET");
  }

  @Test
  void anEmptyImageIsAskedAboutByHeadAfterItsRangeProbeGets416() throws IOException {
    RangeOrigin origin = RangeOrigin.http(new byte[0]);
    closeLater.add(origin);
    Export export = open("url=" + origin.url());
    assertThat(export.size()).isZero();
    assertThat(origin.methods).containsExactly("GET", "HEAD");
  }

  @Test
  void a416ForTheFirstByteFailsTheOpenUnlessHeadSaysTheImageIsEmpty() {
    RangeOrigin origin = RangeOrigin.http(new byte[0]);
    closeLater.add(origin);
    origin.headStatus = 405;
    assertThatThrownBy(() -> open("url=" + origin.url()).size()).hasMessageContaining("416");
  }

  @Test
  void sizeComesFromTheRangeProbeWhenHeadFails() throws IOException {
    RangeOrigin origin = origin();
    origin.headStatus = 405;
    Export export = open("url=" + origin.url());
    assertThat(export.size()).isEqualTo(SIZE);
    assertReadsBack(export, 777, 1000);
  }

  @Test
  void serverWithoutRangeSupportIsRefusedAtOpen() {
    RangeOrigin origin = origin();
    origin.ignoreRanges = true;
    HttpPlugin plugin = plugin("url=" + origin.url());
    assertThatThrownBy(() -> plugin.open(true, "")).hasMessageContaining("does not support range requests");
  }

  /** Faults another attempt would not cure; an outage's are retried (HttpFaultsTest). */
  @ParameterizedTest
  @EnumSource(value = Fault.class, names = {"STALL", "STATUS_429", "STATUS_503", "RESET_MID_BODY"}, mode = EnumSource.Mode.EXCLUDE)
  void badRepliesFailOneReadWithEioAndLaterReadsWork(Fault fault) throws IOException {
    RangeOrigin origin = origin();
    Export export = open("url=" + origin.url());
    origin.failNext(fault, 1);
    assertThatThrownBy(() -> read(export, 4096, 65536))
        .isInstanceOfSatisfying(NbdException.class, e -> {
          assertThat(e.errno()).isEqualTo(Errno.EIO);
          assertThat(e.getMessage()).contains("127.0.0.1").contains("bytes 4096-69631");
        });
    assertReadsBack(export, 4096, 65536);
  }

  @Test
  void stallPastTimeoutIsEio() throws IOException {
    RangeOrigin origin = origin();
    origin.stallMillis = 5000;
    Export export = open("url=" + origin.url(), "timeout=1");
    origin.failNext(Fault.STALL, 1);
    assertThatThrownBy(() -> read(export, 0, 4096))
        .isInstanceOfSatisfying(NbdException.class, e -> assertThat(e.getMessage()).containsIgnoringCase("timeout"));
    assertReadsBack(export, 0, 4096);
  }

  @Test
  void basicAuthWithPasswordFromFile() throws IOException {
    RangeOrigin origin = origin();
    String expected = "Basic " + Base64.getEncoder().encodeToString("alice:s3cret-pw".getBytes(StandardCharsets.UTF_8));
    origin.authorized = headers -> expected.equals(headers.getFirst("Authorization"));
    Path passwordFile = Files.writeString(dir.resolve("pw"), "s3cret-pw\n");
    Export export = open("url=" + origin.url(), "user=alice", "password=+" + passwordFile);
    assertReadsBack(export, 100, 100);
    assertThat(origin.unauthorized.get()).isZero();

    HttpPlugin wrong = plugin("url=" + origin.url(), "user=alice", "password=wrong-pw");
    assertThatThrownBy(() -> wrong.open(true, ""))
        .hasMessageContaining("401")
        .satisfies(e -> assertThat(e.getMessage()).doesNotContain("wrong-pw"));
  }

  @Test
  void cookieAndHeadersAreSent() throws IOException {
    RangeOrigin origin = origin();
    origin.authorized = headers -> "session=abc".equals(headers.getFirst("Cookie"))
        && "yes".equals(headers.getFirst("X-Fixed")) && "jnbd-test".equals(headers.getFirst("User-Agent"));
    Export export = open("url=" + origin.url(), "cookie=session=abc", "header=X-Fixed: yes", "user-agent=jnbd-test");
    assertReadsBack(export, 0, 512);
    assertThat(origin.unauthorized.get()).isZero();
  }

  @Test
  void cookieScriptIsRerunOnceWhenManyRequestsGet401() throws Exception {
    RangeOrigin origin = origin();
    AtomicReference<String> accepted = new AtomicReference<>("session=0");
    origin.authorized = headers -> accepted.get().equals(headers.getFirst("Cookie"));
    Path counter = dir.resolve("runs");
    Files.writeString(counter, "0");
    String script = "n=$(cat " + counter + "); echo $((n+1)) > " + counter + "; echo session=$n";
    Export export = open("url=" + origin.url(), "cookie-script=" + script);
    assertReadsBack(export, 0, 1000);

    accepted.set("session=1");
    try (ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
      List<Callable<byte[]>> reads = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        reads.add(() -> read(export, 0, 1000));
      }
      for (Future<byte[]> result : threads.invokeAll(reads)) {
        assertThat(result.get()).isEqualTo(Arrays.copyOf(DATA, 1000));
      }
    }
    assertThat(Files.readString(counter).strip()).isEqualTo("2");
  }

  @Test
  void scriptsAreRenewedInTheBackground() throws Exception {
    RangeOrigin origin = origin();
    origin.authorized = headers -> headers.getFirst("X-Token") != null && headers.getFirst("Cookie") != null;
    Path counter = dir.resolve("runs");
    Files.writeString(counter, "0");
    // The count is replaced atomically (write, then rename): the test polls the file meanwhile.
    String headerScript = "n=$(cat " + counter + "); echo $((n+1)) > " + counter + ".new; mv " + counter + ".new "
        + counter + "; echo X-Token: t$n; echo X-Other: o";
    Export export = open("url=" + origin.url(), "header-script=" + headerScript, "header-script-renew=1",
        "cookie-script=echo c=1", "cookie-script-renew=1");
    while (Integer.parseInt(Files.readString(counter).strip()) < 3) {
      Thread.sleep(100);
    }
    assertReadsBack(export, 5000, 5000);
    assertThat(origin.seen.getLast().getFirst("X-Other")).isEqualTo("o");
  }

  @Test
  void failedBackgroundRenewalKeepsTheLastGoodValueAndIsRetried() throws Exception {
    RangeOrigin origin = origin();
    origin.authorized = headers -> "good".equals(headers.getFirst("Cookie"));
    Path runs = dir.resolve("runs");
    // Every run is counted; the second one fails, the others print the cookie.
    String script = "echo run >> " + runs + "; [ \"$iteration\" = 1 ] && exit 1; echo good";
    Export export = open("url=" + origin.url(), "cookie-script=" + script, "cookie-script-renew=1");
    while (!Files.exists(runs) || Files.readAllLines(runs).size() < 3) {
      assertReadsBack(export, 0, 100);
      Thread.sleep(100);
    }
    assertReadsBack(export, 100, 100);
    assertThat(origin.unauthorized.get()).isZero();
  }

  @Test
  void passwordFromStdin() throws IOException {
    RangeOrigin origin = origin();
    String expected = "Basic " + Base64.getEncoder().encodeToString("carol:typed-pw".getBytes(StandardCharsets.UTF_8));
    origin.authorized = headers -> expected.equals(headers.getFirst("Authorization"));
    java.io.InputStream stdin = System.in;
    System.setIn(new java.io.ByteArrayInputStream("typed-pw\n".getBytes(StandardCharsets.UTF_8)));
    try {
      assertReadsBack(open("url=" + origin.url(), "user=carol", "password=-"), 0, 10);
    } finally {
      System.setIn(stdin);
    }
  }

  @Test
  void failingScriptAtStartIsAConfigError() {
    RangeOrigin origin = origin();
    assertThatThrownBy(() -> plugin("url=" + origin.url(), "cookie-script=exit 3"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("exit status 3");
  }

  @Test
  void redirectsFollowedUnlessDisabled() throws IOException {
    RangeOrigin origin = origin();
    assertReadsBack(open("url=" + origin.url("/redirect"), "followlocation=true"), 10, 10);
    HttpPlugin noFollow = plugin("url=" + origin.url("/redirect"), "followlocation=false");
    assertThatThrownBy(() -> noFollow.open(true, "")).hasMessageContaining("followlocation");
  }

  @Test
  void throughAnAuthenticatingProxy() throws IOException {
    RangeOrigin origin = origin();
    ForwardingProxy proxy = new ForwardingProxy("pu", "proxy-pw");
    closeLater.add(proxy);
    Path passwordFile = Files.writeString(dir.resolve("ppw"), "proxy-pw");
    Export export = open("url=" + origin.url(), "proxy=" + proxy.url(), "proxy-user=pu", "proxy-password=+" + passwordFile);
    assertReadsBack(export, 3000, 40_000);
    assertThat(proxy.forwarded.get()).isGreaterThanOrEqualTo(2);
  }

  @Test
  void overAUnixSocket() throws IOException {
    RangeOrigin origin = origin();
    UnixBridge bridge = new UnixBridge(dir.resolve("http.sock"), origin.port());
    closeLater.add(bridge);
    // The URL's port is closed: only the Unix socket leads to the origin.
    Export export = open("url=http://127.0.0.1:9/disk.img", "unix-socket-path=" + bridge.path());
    assertReadsBack(export, 8192, 8192);
  }

  @Test
  void tlsWithSelfSignedCertificate() throws IOException {
    SelfSignedTls tls = new SelfSignedTls(dir);
    RangeOrigin origin = RangeOrigin.https(DATA, tls.serverContext());
    closeLater.add(origin);

    assertReadsBack(open("url=" + origin.url(), "sslverify=false"), 0, 4096);
    assertReadsBack(open("url=" + origin.url(), "cainfo=" + tls.pem()), 1, 4096);
    Path caDir = Files.createDirectory(dir.resolve("cas"));
    Files.copy(tls.pem(), caDir.resolve("origin.pem"));
    Files.writeString(caDir.resolve("README"), "not a certificate");
    assertReadsBack(open("url=" + origin.url(), "capath=" + caDir), 2, 4096);

    HttpPlugin verifying = plugin("url=" + origin.url());
    assertThatThrownBy(() -> verifying.open(true, "")).hasMessageContaining("SSLHandshakeException");
    HttpPlugin httpOnly = new HttpPlugin();
    httpOnly.config("url", origin.url());
    httpOnly.config("protocols", "http");
    assertThatThrownBy(httpOnly::configComplete).hasMessageContaining("protocols");
  }

  /** An http:// URL sets TLS up only when a redirect leads to https, with sslverify as given. */
  @Test
  void anHttpUrlRedirectedToHttpsGetsTlsOnTheWay() throws IOException {
    SelfSignedTls tls = new SelfSignedTls(dir);
    RangeOrigin origin = RangeOrigin.https(DATA, tls.serverContext());
    closeLater.add(origin);
    HttpServer redirector = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    redirector.createContext("/", exchange -> {
      exchange.getResponseHeaders().set("Location", origin.url());
      exchange.sendResponseHeaders(302, -1);
      exchange.close();
    });
    redirector.start();
    closeLater.add(() -> redirector.stop(0));
    String url = "url=http://127.0.0.1:" + redirector.getAddress().getPort() + "/disk.img";

    Export export = open(url, "sslverify=false");
    assertReadsBack(export, 0, 4096);
    assertReadsBack(export, 70_000, 100_000);
    HttpPlugin verifying = plugin(url);
    assertThatThrownBy(() -> verifying.open(true, "")).hasMessageContaining("SSLHandshakeException");
  }

  @Test
  void cookieEngineSendsBackWhatTheServerSetMergedWithCookieInOneHeader() throws IOException {
    RangeOrigin origin = origin();
    origin.cookieToSet = headers -> "vmware_soap_session=s1; Path=/; HttpOnly";
    Export export = open("url=" + origin.url(), "cookiefile=", "cookie=fixed=1");
    assertReadsBack(export, 0, 100);
    assertReadsBack(export, 100, 100);
    assertThat(origin.seen.getLast().get("Cookie")).containsExactly("fixed=1; vmware_soap_session=s1");
  }

  @Test
  void cookieFileIsReadAndTheJarWrittenAtUnload() throws IOException {
    RangeOrigin origin = origin();
    origin.authorized = headers -> String.valueOf(headers.getFirst("Cookie")).contains("from_file=yes");
    origin.cookieToSet = headers -> "set_by_server=42; Path=/";
    Path file = dir.resolve("cookies.txt");
    Files.writeString(file, "# Netscape HTTP Cookie File\n\n#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tfrom_file\tyes\n"
        + "other.example\tFALSE\t/\tFALSE\t0\telsewhere\tno\n");
    Path jar = dir.resolve("jar.txt");
    HttpPlugin plugin = Layers.configure(new HttpPlugin(), "url=" + origin.url(), "cookiefile=" + file, "cookiejar=" + jar);
    plugin.configComplete();
    try {
      assertReadsBack(plugin.open(true, ""), 0, 100);
    } finally {
      plugin.unload();
    }
    assertThat(origin.unauthorized.get()).isZero();
    assertThat(origin.seen.getLast().getFirst("Cookie")).doesNotContain("elsewhere");
    assertThat(Files.readAllLines(jar)).contains("#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tfrom_file\tyes",
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tset_by_server\t42");
  }

  @Test
  void cookieFileMayHoldSetCookieLines() throws IOException {
    RangeOrigin origin = origin();
    origin.authorized = headers -> "a=b".equals(headers.getFirst("Cookie"));
    Path file = dir.resolve("cookies.txt");
    Files.writeString(file, "Set-Cookie: a=b; Path=/\n");
    assertReadsBack(open("url=" + origin.url(), "cookiefile=" + file), 0, 100);
    Files.writeString(file, "127.0.0.1\tFALSE\t/\n");
    assertThatThrownBy(() -> plugin("url=" + origin.url(), "cookiefile=" + file))
        .isInstanceOf(ConfigException.class).hasMessageContaining("line 1").hasMessageContaining("7 tab-separated fields");
  }

  @Test
  void tlsVersionsAndCipherSuitesAreThoseAsked() throws IOException {
    SelfSignedTls tls = new SelfSignedTls(dir);
    RangeOrigin tls12Only = RangeOrigin.https(DATA, tls.serverContext(), "TLSv1.2");
    closeLater.add(tls12Only);
    assertReadsBack(open("url=" + tls12Only.url(), "sslverify=false", "ssl-cipher-list=ECDHE-ECDSA-AES256-GCM-SHA384"), 0, 100);
    assertThat(tls12Only.tlsSessions).isNotEmpty().allMatch("TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"::equals);
    tls12Only.tlsSessions.clear();
    assertReadsBack(open("url=" + tls12Only.url(), "cainfo=" + tls.pem(), "ssl-version=tlsv1.2",
        "ssl-cipher-list=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"), 0, 100);
    assertThat(tls12Only.tlsSessions).isNotEmpty().allMatch(session -> session.startsWith("TLSv1.2 TLS_ECDHE_ECDSA_WITH_")
        && (session.endsWith("AES_128_GCM_SHA256") || session.endsWith("CHACHA20_POLY1305_SHA256")));
    HttpPlugin tls13Only = plugin("url=" + tls12Only.url(), "sslverify=false", "ssl-version=tlsv1.3");
    assertThatThrownBy(() -> tls13Only.open(true, "")).isInstanceOf(NbdException.class).hasMessageContaining("SSL");

    RangeOrigin modern = RangeOrigin.https(DATA, tls.serverContext());
    closeLater.add(modern);
    assertReadsBack(open("url=" + modern.url(), "sslverify=false", "ssl-version=tlsv1.3",
        "tls13-ciphers=TLS_CHACHA20_POLY1305_SHA256"), 0, 100);
    assertThat(modern.tlsSessions).isNotEmpty().allMatch("TLSv1.3 TLS_CHACHA20_POLY1305_SHA256"::equals);
  }

  @Test
  void withoutCipherKeysAes128GcmIsOfferedFirst() throws IOException {
    SelfSignedTls tls = new SelfSignedTls(dir);
    RangeOrigin tls12Only = RangeOrigin.https(DATA, tls.serverContext(), "TLSv1.2");
    RangeOrigin modern = RangeOrigin.https(DATA, tls.serverContext());
    closeLater.add(tls12Only);
    closeLater.add(modern);
    assertReadsBack(open("url=" + tls12Only.url(), "sslverify=false"), 0, 100);
    assertThat(tls12Only.tlsSessions).isNotEmpty().allMatch("TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"::equals);
    assertReadsBack(open("url=" + modern.url(), "sslverify=false"), 0, 100);
    assertThat(modern.tlsSessions).isNotEmpty().allMatch("TLSv1.3 TLS_AES_128_GCM_SHA256"::equals);
    // A key for one generation keeps the other's defaults, in the same order.
    modern.tlsSessions.clear();
    assertReadsBack(open("url=" + modern.url(), "sslverify=false", "ssl-cipher-list=ECDHE-ECDSA-AES256-GCM-SHA384"), 0, 100);
    assertThat(modern.tlsSessions).isNotEmpty().allMatch("TLSv1.3 TLS_AES_128_GCM_SHA256"::equals);
  }

  @Test
  void aes128GcmMovesBeforeItsAes256SiblingAndNothingElseMoves() {
    assertThat(TlsChoices.aes128GcmFirst(new String[] {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384"}))
        .containsExactly("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384");
  }

  @Test
  void tlsKeysRefuseWhatTheJdkCannotDo() {
    String url = "url=https://127.0.0.1:9/x";
    assertThatThrownBy(() -> plugin(url, "ssl-version=sslv3")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("ssl-version").hasMessageContaining("not supported");
    assertThatThrownBy(() -> plugin(url, "ssl-version=tls2")).hasMessageContaining("expected default");
    assertThatThrownBy(() -> plugin(url, "ssl-cipher-list=HIGH:!aNULL")).hasMessageContaining("'HIGH' is OpenSSL cipher-string syntax");
    assertThatThrownBy(() -> plugin(url, "ssl-cipher-list=RC4-FOO")).hasMessageContaining("unknown or unsupported cipher suite 'RC4-FOO'");
    assertThatThrownBy(() -> plugin(url, "ssl-cipher-list=TLS_AES_128_GCM_SHA256")).hasMessageContaining("use tls13-ciphers");
    assertThatThrownBy(() -> plugin(url, "tls13-ciphers=ECDHE-RSA-AES128-GCM-SHA256")).hasMessageContaining("use ssl-cipher-list");
    assertThatThrownBy(() -> plugin(url, "http-version=2-prior-knowledge")).hasMessageContaining("HTTP/1.1 only");
    assertThatThrownBy(() -> plugin(url, "ipresolve=v5")).hasMessageContaining("ipresolve");
    assertThatThrownBy(() -> plugin(url, "resolve=host:443")).hasMessageContaining("HOST:PORT:ADDRESS");
    assertThatThrownBy(() -> plugin("url=https://vc.example:443/x", "resolve=vc.example:80:127.0.0.1"))
        .hasMessageContaining("not the URL's port 443");
    assertThatThrownBy(() -> plugin("url=https://vc.example/x", "resolve=vc.example:443:not-an-address")).hasMessageContaining("not an IP address");
  }

  @Test
  void openSslNamesOfTls12Suites() {
    assertThat(TlsChoices.openSslName("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")).isEqualTo("ECDHE-RSA-AES128-GCM-SHA256");
    assertThat(TlsChoices.openSslName("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")).isEqualTo("ECDHE-ECDSA-CHACHA20-POLY1305");
    assertThat(TlsChoices.openSslName("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")).isEqualTo("DHE-RSA-AES256-GCM-SHA384");
    assertThat(TlsChoices.openSslName("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")).isEqualTo("ECDHE-RSA-AES128-SHA");
    assertThat(TlsChoices.openSslName("TLS_RSA_WITH_AES_256_CBC_SHA256")).isEqualTo("AES256-SHA256");
    assertThat(TlsChoices.openSslName("TLS_AES_128_GCM_SHA256")).isNull();
    assertThat(TlsChoices.openSslName("TLS_EMPTY_RENEGOTIATION_INFO_SCSV")).isNull();
  }

  @Test
  void resolveAndIpresolveChooseTheAddress() throws IOException {
    RangeOrigin origin = origin();
    String byName = "url=http://vcenter.invalid:" + origin.port() + "/disk.img";
    assertReadsBack(open(byName, "resolve=vcenter.invalid:" + origin.port() + ":127.0.0.1", "http-version=2TLS"), 0, 100);
    assertThat(origin.seen.getLast().getFirst("Host")).isEqualTo("vcenter.invalid:" + origin.port());
    HttpPlugin v6 = plugin("url=" + origin.url(), "ipresolve=v6");
    assertThatThrownBy(() -> v6.open(true, "")).hasMessageContaining("no IPv6 address");
    assertReadsBack(open("url=" + origin.url(), "ipresolve=v4"), 0, 100);
  }

  @Test
  void configErrorsNameTheKey() {
    assertThatThrownBy(() -> plugin("url=http://127.0.0.1:9/x", "bogus=1"))
        .isInstanceOf(ConfigException.class).hasMessageContaining("bogus");
    assertThatThrownBy(() -> plugin("user=x")).hasMessageContaining("url is required");
    assertThatThrownBy(() -> plugin("url=ftp://127.0.0.1/x")).hasMessageContaining("http://");
    assertThatThrownBy(() -> plugin("url=http://127.0.0.1:9/x", "connections=0")).hasMessageContaining("connections");
    assertThatThrownBy(() -> plugin("url=http://127.0.0.1:9/x", "header=novalue")).hasMessageContaining("header");
  }

  @Test
  void keysThatNeedAnotherAreRefused(@TempDir Path dir) {
    String url = "url=http://127.0.0.1:9/x";
    assertThatThrownBy(() -> plugin(url, "password=pw")).hasMessage("http: password given without user");
    assertThatThrownBy(() -> plugin(url, "proxy=http://127.0.0.1:9", "proxy-password=pw"))
        .hasMessage("http: proxy-password given without proxy-user");
    assertThatThrownBy(() -> plugin(url, "cookie=a=b", "cookie-script=true"))
        .hasMessage("http: cookie and cookie-script cannot both be given");
    assertThatThrownBy(() -> plugin(url, "cookiejar=" + dir.resolve("absent/jar")))
        .hasMessage("http: cookiejar: cannot write a file at " + dir.resolve("absent/jar"));
    assertThatThrownBy(() -> plugin(url, "cookiejar=" + dir)).hasMessage("http: cookiejar: cannot write a file at " + dir);
  }

  @Test
  void settingsPrintNoSecret() {
    HttpPlugin plugin = plugin("url=http://bob:url-SECRET@127.0.0.1:9/x?token=tok-SECRET", "password=pw-SECRET",
        "cookie=c-SECRET", "proxy=http://127.0.0.1:9", "proxy-user=p", "proxy-password=pp-SECRET");
    assertThat(plugin.settings().toString()).contains("127.0.0.1:9/x").doesNotContain("SECRET");
  }

  @Test
  void secretsStayOutOfErrors() throws IOException {
    RangeOrigin origin = origin();
    String secretUrl = origin.url() + "?dsName=ds1&token=tok-SECRET";
    Export export = open("url=" + secretUrl.replace("http://", "http://bob:url-SECRET@"), "password=pw-SECRET",
        "cookie=c-SECRET", "header=X-Key: h-SECRET", "proxy-user=p", "proxy-password=pp-SECRET",
        "proxy=http://127.0.0.1:" + origin.port());
    origin.failNext(Fault.STATUS_500, 1);
    assertThatThrownBy(() -> read(export, 0, 10)).satisfies(e -> assertThat(e.getMessage())
        .contains("500").contains("dsName=ds1").contains("token=***").doesNotContain("SECRET").doesNotContain("bob"));
  }

  @Test
  void aMalformedProxyUrlIsReportedWithoutItsPassword() {
    assertThatThrownBy(() -> plugin("url=http://127.0.0.1:1/disk", "proxy=http://u:pw-SECRET@bad host:3128"))
        .isInstanceOf(ConfigException.class)
        .satisfies(e -> assertThat(e.getMessage()).startsWith("http: proxy: not a valid URL").doesNotContain("SECRET"));
  }

  @Test
  void percentEncodingOfTheUrlIsKept() throws IOException {
    RangeOrigin origin = origin();
    assertReadsBack(open("url=" + origin.url() + "?dcPath=a%26b&dsName=ds%201"), 0, 10);
    assertThat(origin.queries).isNotEmpty().allMatch("dcPath=a%26b&dsName=ds%201"::equals);
  }

  @Test
  void curlIsAnAliasTakingTheSameKeysAndServingTheSameBytes() throws IOException {
    RangeOrigin origin = origin();
    Plugin curl = Catalog.plugin("curl");
    assertThat(curl.parameters()).isEqualTo(Catalog.plugin("http").parameters());
    assertThat(curl.magicConfigKey()).isEqualTo("url");
    curl.config("url", origin.url());
    curl.config("connections", "2");
    curl.configComplete();
    closeLater.add(curl::unload);
    assertReadsBack(curl.open(true, ""), 12345, 4096);
  }

}
