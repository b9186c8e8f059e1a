package io.jnbd.plugins;

import static io.jnbd.plugins.Plugins.configured;
import static io.jnbd.plugins.Plugins.map;
import static io.jnbd.plugins.Plugins.write;
import static io.jnbd.testing.Exports.read;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import java.io.IOException;
import java.util.HexFormat;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class DataPluginTest {
  /** The whole disk as hex, e.g. "0102ff". */
  private static String contents(String... keyValues) throws IOException {
    try (Export export = configured("data", keyValues).open(true, "")) {
      return HexFormat.of().formatHex(read(export, 0, (int) export.size()));
    }
  }

  /** Expected outputs were taken from nbdkit 1.32's data plugin with the same expressions. */
  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      1 2 3                          | 010203
      0x10 010 255                   | 1008ff
      1 @10                          | 01000000000000000000
      1 2 3 @1                       | 010203
      ( 1 2 3 @1 )*2                 | 010203010203
      1 @+5 @-3 9                    | 010000090000
      1 2 3 @0 ( @2 9 )              | 000009
      1 2 3 4 5 @0 ( @1 9 )*2        | 0009000905
      @^8 1 @^4                      | 01000000
      1 @^4                          | 01000000
      le16:0x102 be32:5              | 020100000005
      "a\\x41\\n"                    | 61410a
      "\\\\\\""                      | 5c22
      0xff*3 @-1                     | ffffff
      ( 0x55 )*0                     | ''
      0x55*2*3                       | 555555555555
      "ab"*3                         | 616261626162
      be64:0xfffffffffffffffe        | fffffffffffffffe
      le32:1 # a comment\\n 2        | 0100000002
      """)
  void matchesNbdkit(String data, String hex) throws IOException {
    assertThat(contents("data=" + data.replace("\\n", "\n"))).isEqualTo(hex);
  }

  @Test
  void repetitionOfALargePatternIsLaidOutInFull() throws IOException {
    try (Export export = configured("data", "data=( 0x55 0xAA )*1000000 @^16 ( @1000 1 )*3").open(false, "")) {
      assertThat(export.size()).isEqualTo(2_000_000 + 3 * 1001);
      byte[] pattern = read(export, 1_999_990, 10);
      assertThat(HexFormat.of().formatHex(pattern)).isEqualTo("55aa".repeat(5));
      assertThat(read(export, 2_000_000 + 999, 3)).containsExactly(0, 1, 0);
      assertThat(read(export, 2_000_000 + 2000, 4)).containsExactly(0, 1, 0, 0);
      assertThat(read(export, 2_000_000 + 3002, 1)).containsExactly(1);
    }
  }

  @Test
  void sizeTruncatesOrExtendsAndTheDiskIsWritableAndSparse() throws IOException {
    assertThat(contents("data=1 2 3 4", "size=2")).isEqualTo("0102");
    try (Export export = configured("data", "data=@1048576 1", "size=4M").open(false, "")) {
      assertThat(export.size()).isEqualTo(4 << 20);
      assertThat(map(export, 0, 4 << 20)).isEqualTo("[3:1048576, 0:65536, 3:3080192]");
      write(export, 0, new byte[] {7});
      assertThat(read(export, 0, 1)).containsExactly(7);
      assertThat(export.canWrite()).isTrue();
    }
  }

  @Test
  void rawAndBase64() throws IOException {
    assertThat(contents("raw=Hello")).isEqualTo("48656c6c6f");
    assertThat(contents("base64=MTIz", "size=5")).isEqualTo("3132330000");
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      256                 | range 0..255
      <file               | files and scripts
      $var                | variables
      \\name              | names
      ( 1 2               | missing ')'
      1 2 )               | unmatched ')'
      "abc                | unterminated string
      "\\q"               | unsupported escape
      1[0:1]              | slices
      1 -> \\x            | names
      @-1                 | before the start
      @5*2                | cannot be repeated
      le24:1              | unknown word type
      le16:65536          | does not fit
      1*99999999999999999999 | repeat count
      0x                  | expected a number
      @^0                 | alignment
      ( 1 )*4611686018427387904*4 | overflows
      """)
  void rejectsWhatItDoesNotSupportWithAClearError(String data, String message) {
    assertThatThrownBy(() -> configured("data", "data=" + data))
        .isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("data: ")
        .hasMessageContaining(message);
  }

  @Test
  void configErrors() {
    assertThatThrownBy(() -> configured("data")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("one of data, raw or base64");
    assertThatThrownBy(() -> configured("data", "data=1", "raw=x")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("exactly one");
    assertThatThrownBy(() -> configured("data", "base64=!!")).isInstanceOf(ConfigException.class)
        .hasMessageStartingWith("data: base64");
    assertThatThrownBy(() -> configured("data", "data=1", "allocator=zstd")).isInstanceOf(ConfigException.class)
        .hasMessageContaining("allocator");
  }
}
