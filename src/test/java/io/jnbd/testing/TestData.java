package io.jnbd.testing;

import java.util.Random;

/** Test data made by the tests themselves, the same on every run. */
public final class TestData {
  private TestData() {}

  /** {@code size} bytes that look random, the same for the same seed. */
  public static byte[] randomBytes(int size, long seed) {
    byte[] bytes = new byte[size];
    new Random(seed).nextBytes(bytes);
    return bytes;
  }
}
