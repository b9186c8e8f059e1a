package io.jnbd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestPlan;

/**
 * Writes, at the end of a test run, how many tests needed each real client tool, so that the CI
 * log shows those tests ran (a missing tool fails them; see {@link Tools#require}). The file is
 * named by the jnbd.toolTally property (the build sets it; `.ci/run` prints it), because the test
 * JVM's own output goes to per-class report files.
 */
public final class ToolTally implements TestExecutionListener {
  @Override
  public void testPlanExecutionFinished(TestPlan testPlan) {
    String file = System.getProperty("jnbd.toolTally");
    Map<String, Integer> counts = Tools.requiredCounts();
    if (file == null || counts.isEmpty()) {
      return;
    }
    StringBuilder line = new StringBuilder();
    counts.forEach((tool, count) -> line.append(tool).append('=').append(count).append(' '));
    try {
      Files.writeString(Path.of(file), line.toString().strip() + "\n");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
