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
   * earlier one works. 1.45.11 is the highest gate: 1.12 (ssh), 1.17.4 ({@code -D
   * nbdkit.backend.datapath=0}), 1.22 (curl's {@code cookie-script}, {@code file cache=none};
   * the python plugin for rhv-upload is absent and probed by name), 1.44 ({@code -i disk}: {@code
   * file dir=} under a cow overlay per export) and 1.17.10 / 1.45.11 (vddk, absent and probed by
   * name, so virt-v2v refuses that mode itself). VirtV2vProbesTest checks each gate claimed.
   */
  static final String NBDKIT_LEVEL = "1.45.11";

  static int major() {
    return Integer.parseInt(NBDKIT_LEVEL.split("\\.")[0]);
  }

  static int minor() {
    return Integer.parseInt(NBDKIT_LEVEL.split("\\.")[1]);
  }
}
