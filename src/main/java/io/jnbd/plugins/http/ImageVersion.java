package io.jnbd.plugins.http;

import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.HttpResponse;

/**
 * The image as it was when the export was opened: its size and the validator HTTP offers for
 * telling versions apart, the ETag or, without one, Last-Modified. Every ranged reply is compared
 * with it, so that bytes of a changed image are never mixed with those already served. A reply
 * without the header is not compared on it: a missing header says nothing about the version.
 *
 * @param etag null when the origin sends none
 * @param lastModified null when the origin sends none; only compared when there is no ETag
 */
record ImageVersion(long size, String etag, String lastModified) {
  static ImageVersion of(long size, HttpResponse response) {
    return new ImageVersion(size, value(response, "ETag"), value(response, "Last-Modified"));
  }

  /** If-Match compares strongly: a weak ETag would never match, so it is only compared by us. */
  private boolean strongEtag() {
    return etag != null && !etag.startsWith("W/");
  }

  /** Makes the server answer 412 for a changed image instead of sending bytes of it. */
  void addPrecondition(HttpRequest request) {
    if (strongEtag()) {
      request.setHeader("If-Match", etag);
    }
  }

  /**
   * How a 206 reply shows a version other than this one.
   *
   * @param total the size its Content-Range gives, -1 for '*'
   * @return the difference, e.g. {@code ETag "b" instead of "a"}; null when there is none
   */
  String differenceIn(HttpResponse reply, long total) {
    if (total >= 0 && total != size) {
      return "size " + total + " instead of " + size;
    }
    if (etag != null) {
      return difference("ETag", etag, value(reply, "ETag"));
    }
    if (lastModified != null) {
      return difference("Last-Modified", lastModified, value(reply, "Last-Modified"));
    }
    return null;
  }

  /** What reads check, for the log. */
  String checkedBy() {
    if (etag != null) {
      return "size and ETag " + etag + (strongEtag() ? ", sent as If-Match" : " (weak: compared, not sent)");
    }
    return lastModified != null ? "size and Last-Modified " + lastModified
        : "only the size: the origin sends neither ETag nor Last-Modified";
  }

  private static String difference(String name, String expected, String actual) {
    return actual == null || actual.equals(expected) ? null : name + " " + actual + " instead of " + expected;
  }

  private static String value(HttpResponse response, String name) {
    Header header = response.getFirstHeader(name);
    return header == null ? null : header.getValue().strip();
  }
}
