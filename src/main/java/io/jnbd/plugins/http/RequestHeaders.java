package io.jnbd.plugins.http;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.message.BasicHeader;

/**
 * The headers every request carries: fixed ones (header=, cookie=) and those produced by
 * cookie-script and header-script. Shared by all connections; taking a {@link Snapshot} never
 * waits for a script.
 */
final class RequestHeaders implements AutoCloseable {
  /** The headers to send, and which script outputs they came from (for coalesced renewal). */
  record Snapshot(List<Header> headers, long cookieGeneration, long headerGeneration) {}

  private final List<Header> fixed = new ArrayList<>();
  private final ScriptedValue cookieScript;
  private final ScriptedValue headerScript;

  RequestHeaders(HttpSettings settings) {
    for (String header : settings.headers()) {
      fixed.add(parse(header));
    }
    if (settings.cookie() != null) {
      fixed.add(new BasicHeader("Cookie", settings.cookie()));
    }
    cookieScript = settings.cookieScript() == null ? null
        : new ScriptedValue("cookie-script", settings.cookieScript(), settings.url(), settings.cookieScriptRenew());
    headerScript = settings.headerScript() == null ? null
        : new ScriptedValue("header-script", settings.headerScript(), settings.url(), settings.headerScriptRenew());
  }

  /** Runs the scripts for their first values and starts their renewal. */
  void start() throws IOException {
    if (cookieScript != null) {
      cookieScript.start();
    }
    if (headerScript != null) {
      headerScript.start();
    }
  }

  /** True when a rejected request (401/403) is worth retrying after re-running a script. */
  boolean renewable() {
    return cookieScript != null || headerScript != null;
  }

  Snapshot current() {
    List<Header> headers = new ArrayList<>(fixed);
    long cookieGeneration = -1;
    long headerGeneration = -1;
    if (cookieScript != null) {
      ScriptedValue.Value cookie = cookieScript.current();
      headers.add(new BasicHeader("Cookie", cookie.text().strip()));
      cookieGeneration = cookie.generation();
    }
    if (headerScript != null) {
      ScriptedValue.Value lines = headerScript.current();
      for (String line : lines.text().split("\r?\n")) {
        if (line.indexOf(':') > 0) {
          headers.add(parse(line));
        }
      }
      headerGeneration = lines.generation();
    }
    return new Snapshot(List.copyOf(headers), cookieGeneration, headerGeneration);
  }

  /** Re-runs the scripts whose output {@code rejected} used, unless another request already did. */
  void renew(Snapshot rejected) throws IOException {
    if (cookieScript != null) {
      cookieScript.renewIfStill(rejected.cookieGeneration());
    }
    if (headerScript != null) {
      headerScript.renewIfStill(rejected.headerGeneration());
    }
  }

  private static Header parse(String line) {
    int colon = line.indexOf(':');
    return new BasicHeader(line.substring(0, colon).strip(), line.substring(colon + 1).strip());
  }

  @Override
  public void close() {
    if (cookieScript != null) {
      cookieScript.close();
    }
    if (headerScript != null) {
      headerScript.close();
    }
  }
}
