package io.jnbd.server.tls;

import io.jnbd.api.ConfigException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GnuTLS psktool key file: one {@code username:hexkey} line per client. Read at every
 * handshake, as GnuTLS reads it, so keys can be added or revoked while the server runs. Errors
 * name the file and line, never a key.
 */
final class PskFile {
  private final Path path;

  PskFile(Path path) {
    this.path = path;
  }

  Path path() {
    return path;
  }

  /** The keys by username; a malformed line is an error naming its number. */
  Map<String, byte[]> read() throws IOException {
    List<String> lines;
    try {
      lines = Files.readAllLines(path, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new NoSuchFileException(path + ": No such file or directory");
    }
    Map<String, byte[]> keys = new LinkedHashMap<>();
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i).strip();
      if (line.isEmpty()) {
        continue;
      }
      int colon = line.indexOf(':');
      String where = path + " line " + (i + 1);
      if (colon <= 0) {
        throw new IOException(where + ": not username:hexkey");
      }
      byte[] key;
      try {
        key = HexFormat.of().parseHex(line, colon + 1, line.length());
      } catch (IllegalArgumentException e) {
        throw new IOException(where + ": the key is not an even number of hex digits");
      }
      if (key.length == 0) {
        throw new IOException(where + ": the key is empty");
      }
      keys.putIfAbsent(line.substring(0, colon), key);
    }
    return keys;
  }

  /** Reads the file once at start-up, so that a missing or malformed file stops the server there. */
  void check() {
    try {
      if (read().isEmpty()) {
        throw new ConfigException("--tls-psk: " + path + " has no username:hexkey line");
      }
    } catch (IOException e) {
      throw new ConfigException("--tls-psk: " + e.getMessage());
    }
  }
}
