package io.jnbd.server;

import io.jnbd.util.FileErrors;
import io.jnbd.util.PathEntry;
import java.io.IOException;
import java.net.BindException;
import java.net.ConnectException;
import java.net.SocketException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Binds a listener to a Unix socket path without taking the path from anyone. The one thing
 * removed from the path is a stale socket: one that a server left behind when it died, which
 * nobody accepts on. Anything else there is refused with the "Address already in use" that
 * nbdkit reports.
 */
final class UnixSocketPath {
  private UnixSocketPath() {}

  /** Binds listener to path; returns the socket file made, which is the server's to remove. */
  static PathEntry bind(ServerSocketChannel listener, Path path, int backlog) throws IOException {
    if (!bindUnlessTaken(listener, path, backlog)) {
      removeStaleSocket(path);
      if (!bindUnlessTaken(listener, path, backlog)) {
        throw addressInUse(path, "another file was put there meanwhile");
      }
    }
    return PathEntry.read(path)
        .orElseThrow(() -> new IOException("socket " + path + " was removed as soon as it was created"));
  }

  /** Binds, or returns false if something exists at path (bind never replaces a file). */
  private static boolean bindUnlessTaken(ServerSocketChannel listener, Path path, int backlog)
      throws IOException {
    try {
      listener.bind(UnixDomainSocketAddress.of(path), backlog);
      return true;
    } catch (BindException e) {
      if (PathEntry.read(path).isPresent()) {
        return false;
      }
      throw new IOException("cannot bind to " + path + ": " + e.getMessage(), e);
    } catch (SocketException e) {
      Path directory = path.getParent();
      String reason = directory != null && Files.notExists(directory)
          ? "directory " + directory + " does not exist"
          : e.getMessage();
      throw new IOException("cannot create socket " + path + ": " + reason, e);
    }
  }

  /** Removes what is at path if it is a stale socket; refuses anything else. */
  private static void removeStaleSocket(Path path) throws IOException {
    Optional<PathEntry> found = PathEntry.read(path);
    if (found.isEmpty()) {
      return; // gone since bind failed: bind again
    }
    PathEntry entry = found.get();
    if (!entry.isSocket()) {
      throw addressInUse(path, "it is " + entry.typeName() + ", not a socket");
    }
    try (SocketChannel probe = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      // Non-blocking: against a listener whose backlog is full, a blocking connect would wait.
      probe.configureBlocking(false);
      probe.connect(UnixDomainSocketAddress.of(path));
      throw addressInUse(path, "another server is listening on it");
    } catch (ConnectException refused) {
      // Nobody accepts on it: stale.
    } catch (SocketException e) {
      // Only a refusal proves it stale; a full backlog (EAGAIN), for one, means a live server.
      throw addressInUse(path, "another server may be listening on it: " + e.getMessage());
    }
    try {
      // Only the socket just probed: a server starting meanwhile may have put its own there.
      entry.deleteIfCurrent();
    } catch (IOException e) {
      throw addressInUse(path, "cannot remove the stale socket: " + FileErrors.reason(e));
    }
  }

  private static IOException addressInUse(Path path, String detail) {
    return new IOException("cannot bind to " + path + ": Address already in use (" + detail + ")");
  }
}
