package io.jnbd.plugins.ssh;

import java.io.IOException;
import java.net.SocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;
import org.apache.sshd.client.config.hosts.KnownHostEntry;
import org.apache.sshd.client.keyverifier.ServerKeyVerifier;
import org.apache.sshd.client.session.ClientSession;
import org.apache.sshd.common.NamedFactory;
import org.apache.sshd.common.config.keys.KeyUtils;
import org.apache.sshd.common.config.keys.PublicKeyEntryResolver;
import org.apache.sshd.common.signature.Signature;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Checks a server's host key against OpenSSH known_hosts files, as ssh(1) with
 * StrictHostKeyChecking=yes does: a key listed for the host (hashed names and {@code [host]:port}
 * included) is accepted, a {@code @revoked} one is refused, and an unknown or changed key is
 * refused with a message that says which and what to do. The files are read once, when the
 * plugin is configured; a missing file counts as empty.
 */
final class KnownHosts {
  private static final Logger LOG = LoggerFactory.getLogger(KnownHosts.class);

  private final List<Path> files;
  private final List<KnownHostEntry> entries = new ArrayList<>();

  private KnownHosts(List<Path> files) {
    this.files = List.copyOf(files);
  }

  static KnownHosts read(List<Path> files) throws IOException {
    KnownHosts known = new KnownHosts(files);
    for (Path file : files) {
      if (Files.isReadable(file)) {
        known.entries.addAll(KnownHostEntry.readKnownHostEntries(file));
      } else {
        LOG.debug("known hosts file {} is absent or unreadable", file);
      }
    }
    return known;
  }

  /** The key types known_hosts lists for this host, so key exchange can ask for one of them. */
  Set<String> keyTypes(String host, int port) {
    Set<String> types = new LinkedHashSet<>();
    for (KnownHostEntry entry : entries) {
      if (entry.getMarker() == null && entry.isHostMatch(host, port)) {
        types.add(entry.getKeyEntry().getKeyType());
      }
    }
    return types;
  }

  /**
   * The signature algorithms in {@code offered} order, those that verify a key type in {@code
   * known} first: a server with an RSA and an ECDSA key, of which known_hosts lists only the
   * RSA one, must be asked for RSA, or its ECDSA key would look unknown.
   */
  static List<NamedFactory<Signature>> preferring(Set<String> known, List<NamedFactory<Signature>> offered) {
    List<NamedFactory<Signature>> first = new ArrayList<>();
    List<NamedFactory<Signature>> rest = new ArrayList<>();
    for (NamedFactory<Signature> factory : offered) {
      String name = factory.getName();
      boolean verifiesKnown = known.contains(name) || name.startsWith("rsa-sha2-") && known.contains("ssh-rsa");
      (verifiesKnown ? first : rest).add(factory);
    }
    first.addAll(rest);
    return first;
  }

  /** The verdict on a key the server presented. */
  sealed interface Verdict {
    record Known() implements Verdict {}

    record Refused(String reason) implements Verdict {}
  }

  Verdict check(String host, int port, PublicKey presented) {
    String type = KeyUtils.getKeyType(presented);
    boolean sameTypeOtherKey = false;
    Set<String> otherTypes = new LinkedHashSet<>();
    Verdict verdict = null;
    for (KnownHostEntry entry : entries) {
      if (!entry.isHostMatch(host, port)) {
        continue;
      }
      PublicKey listed = resolve(entry);
      boolean same = listed != null && KeyUtils.compareKeys(listed, presented);
      if ("revoked".equals(entry.getMarker())) {
        if (same) {
          return new Verdict.Refused("the host key of " + describe(host, port) + " (" + fingerprint(presented)
              + ") is marked @revoked in known_hosts");
        }
      } else if (entry.getMarker() == null) {
        if (same) {
          verdict = new Verdict.Known();
        } else if (entry.getKeyEntry().getKeyType().equals(type)) {
          sameTypeOtherKey = true;
        } else {
          otherTypes.add(entry.getKeyEntry().getKeyType());
        }
      }
    }
    if (verdict != null) {
      return verdict;
    }
    if (sameTypeOtherKey) {
      return new Verdict.Refused("the host key of " + describe(host, port) + " has CHANGED: it is now " + type + " "
          + fingerprint(presented) + ", not the key listed in " + files
          + ". Someone may be intercepting the connection (a man-in-the-middle attack), or the host key was"
          + " replaced; if you trust the new key, remove the old line from known_hosts");
    }
    return new Verdict.Refused("the host key of " + describe(host, port) + " (" + type + " " + fingerprint(presented)
        + ") is not in " + files
        + (otherTypes.isEmpty() ? "" : " (which lists only " + String.join(", ", otherTypes) + " keys for it)")
        + ": connect once with ssh(1) to accept it, add it with 'ssh-keyscan" + (port == 22 ? "" : " -p " + port)
        + " " + host + " >> ~/.ssh/known_hosts' after checking it, name a file holding it with known-hosts=,"
        + " or (unsafe) set verify-remote-host=false");
  }

  private static PublicKey resolve(KnownHostEntry entry) {
    try {
      return entry.getKeyEntry().resolvePublicKey(null, null, PublicKeyEntryResolver.IGNORING);
    } catch (IOException | GeneralSecurityException e) {
      LOG.debug("known_hosts entry not understood: {}", entry.getConfigLine(), e);
      return null;
    }
  }

  private static String describe(String host, int port) {
    return port == 22 ? host : "[" + host + "]:" + port;
  }

  private static String fingerprint(PublicKey key) {
    return KeyUtils.getFingerPrint(key);
  }

  /**
   * Verifies every session's server key for one host, and records why it refused each session,
   * so the failed connection can say so instead of MINA's generic "Server key did not validate".
   */
  static final class Verifier implements ServerKeyVerifier {
    /**
     * Kept here, not as a session attribute: MINA clears a session's attributes once it has closed,
     * which a refused session does at once, so the reason could be gone before the caller asks.
     */
    private final Map<ClientSession, String> refusals = Collections.synchronizedMap(new WeakHashMap<>());
    private final KnownHosts known;
    private final String host;
    private final int port;

    Verifier(KnownHosts known, String host, int port) {
      this.known = known;
      this.host = host;
      this.port = port;
    }

    @Override
    public boolean verifyServerKey(ClientSession session, SocketAddress remote, PublicKey key) {
      if (known.check(host, port, key) instanceof Verdict.Refused refused) {
        refusals.put(session, refused.reason());
        return false;
      }
      return true;
    }

    /** Why this session's server key was refused, or null. */
    static String refusal(ClientSession session) {
      return session.getServerKeyVerifier() instanceof Verifier verifier ? verifier.refusals.remove(session) : null;
    }
  }
}
