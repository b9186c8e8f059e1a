package io.jnbd.plugins.ssh;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.apache.sshd.common.NamedFactory;
import org.apache.sshd.common.config.keys.KeyUtils;
import org.apache.sshd.common.config.keys.PublicKeyEntry;
import org.apache.sshd.common.keyprovider.KeyPairProvider;
import org.apache.sshd.common.signature.BuiltinSignatures;
import org.apache.sshd.common.signature.Signature;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KnownHostsTest {
  @TempDir Path dir;

  private static KeyPair ecdsa() throws Exception {
    return KeyUtils.generateKeyPair(KeyPairProvider.ECDSA_SHA2_NISTP256, 256);
  }

  private static String line(String hosts, KeyPair key) {
    return hosts + " " + PublicKeyEntry.toString(key.getPublic());
  }

  /** A host name hashed as ssh-keygen -H writes it: |1|salt|HMAC-SHA1(salt, name). */
  private static String hashed(String name) throws Exception {
    byte[] salt = new byte[20];
    new java.util.Random(1).nextBytes(salt);
    Mac mac = Mac.getInstance("HmacSHA1");
    mac.init(new SecretKeySpec(salt, "HmacSHA1"));
    byte[] hash = mac.doFinal(name.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    return "|1|" + Base64.getEncoder().encodeToString(salt) + "|" + Base64.getEncoder().encodeToString(hash);
  }

  private KnownHosts known(String... lines) throws Exception {
    Path file = dir.resolve("known_hosts");
    Files.writeString(file, String.join("\n", lines) + "\n");
    return KnownHosts.read(List.of(file, dir.resolve("absent")));
  }

  @Test
  void aListedKeyIsKnownByPlainOrHashedNameAndPortMatters() throws Exception {
    KeyPair key = ecdsa();
    KnownHosts plain = known(line("[127.0.0.1]:2222", key));
    assertThat(plain.check("127.0.0.1", 2222, key.getPublic())).isInstanceOf(KnownHosts.Verdict.Known.class);
    assertThat(plain.check("127.0.0.1", 22, key.getPublic())).isInstanceOf(KnownHosts.Verdict.Refused.class);
    KnownHosts hashedName = known(line(hashed("[127.0.0.1]:2222"), key));
    assertThat(hashedName.check("127.0.0.1", 2222, key.getPublic())).isInstanceOf(KnownHosts.Verdict.Known.class);
    KnownHosts port22 = known(line("server.example.com", key));
    assertThat(port22.check("server.example.com", 22, key.getPublic())).isInstanceOf(KnownHosts.Verdict.Known.class);
  }

  @Test
  void unknownChangedAndRevokedKeysAreRefusedWithTheirReason() throws Exception {
    KeyPair listed = ecdsa();
    KeyPair presented = ecdsa();
    assertThat(known(line("other.example.com", listed)).check("h", 22, presented.getPublic()))
        .isInstanceOfSatisfying(KnownHosts.Verdict.Refused.class, refused -> assertThat(refused.reason())
            .contains("the host key of h (ecdsa-sha2-nistp256 SHA256:", "is not in", "ssh-keyscan h >>"));
    assertThat(known(line("h", listed)).check("h", 22, presented.getPublic()))
        .isInstanceOfSatisfying(KnownHosts.Verdict.Refused.class, refused -> assertThat(refused.reason())
            .contains("has CHANGED", "man-in-the-middle"));
    assertThat(known(line("h", presented), "@revoked " + line("h", presented)).check("h", 22, presented.getPublic()))
        .isInstanceOfSatisfying(KnownHosts.Verdict.Refused.class, refused -> assertThat(refused.reason())
            .contains("@revoked"));
  }

  @Test
  void signatureAlgorithmsForListedKeyTypesComeFirst() throws Exception {
    KnownHosts rsaOnly = known(line("h", KeyUtils.generateKeyPair(KeyPairProvider.SSH_RSA, 1024)));
    Set<String> types = rsaOnly.keyTypes("h", 22);
    assertThat(types).containsExactly("ssh-rsa");
    List<NamedFactory<Signature>> offered = List.of(BuiltinSignatures.nistp256, BuiltinSignatures.rsaSHA512,
        BuiltinSignatures.rsa);
    assertThat(KnownHosts.preferring(types, offered)).extracting(NamedFactory::getName)
        .containsExactly("rsa-sha2-512", "ssh-rsa", "ecdsa-sha2-nistp256");
  }
}
