package io.jnbd.api;

import java.io.IOException;

/**
 * An error a plugin or filter reports for one request. The request fails with {@link #errno()}
 * and the message is logged and, where the client negotiated structured replies, sent to it;
 * the connection stays up. Any other {@link IOException} thrown by a plugin counts as {@link
 * Errno#EIO}.
 */
public class NbdException extends IOException {
  private static final long serialVersionUID = 1L;
  private final Errno errno;

  public NbdException(Errno errno, String message) {
    super(message);
    this.errno = errno;
  }

  public NbdException(Errno errno, String message, Throwable cause) {
    super(message, cause);
    this.errno = errno;
  }

  public Errno errno() {
    return errno;
  }

  /** The errno for any failure: its own for an NbdException, EIO for anything else. */
  public static Errno errnoOf(Throwable failure) {
    return failure instanceof NbdException e ? e.errno() : Errno.EIO;
  }
}
