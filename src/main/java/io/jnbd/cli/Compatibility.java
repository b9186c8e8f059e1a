package io.jnbd.cli;

/**
 * The nbdkit release whose behaviour jnbd vouches for, reported apart from jnbd's own version.
 * Programs that drive nbdkit (virt-v2v above all) read {@code version=} from {@code
 * --dump-config} and turn modes on or off by comparing it with the release that brought what
 * each mode needs; jnbd's own version number means nothing to them.
 */
final class Compatibility {
  private Compatibility() {}

  /**
   * The nbdkit compatibility level, MAJOR.MINOR.MICRO. The rule (docs/cli.md, "Compatibility
   * level"): claim a release only when everything virt-v2v gates on that release and on every
   * earlier one works. 1.17.10 is the highest gate met today: 1.12 (ssh, which virt-v2v also
   * probes for by name, so its absence is told truthfully), 1.17.4 ({@code -D
   * nbdkit.backend.datapath=0}), 1.17.10 (vddk, likewise probed by name). The next gate, 1.22,
   * puts {@code cache=none} on every file plugin line, which the file plugin does not accept yet;
   * claiming it would turn virt-v2v's refusal of those modes into a failure halfway through.
   */
  static final String NBDKIT_LEVEL = "1.17.10";

  static int major() {
    return Integer.parseInt(NBDKIT_LEVEL.split("\\.")[0]);
  }

  static int minor() {
    return Integer.parseInt(NBDKIT_LEVEL.split("\\.")[1]);
  }
}
