package io.jnbd.server;

/** What a fuzz run exercised, for its report: counts the {@link FuzzPlayer} keeps as it judges. */
final class FuzzTally {
  long optionsAnswered;
  long requestsAnswered;
  long requestsRefused;
  long bytesChecked;
  long hangUps;

  @Override
  public String toString() {
    return String.format("%d options answered, %d requests answered (%d refused), %.1f MiB read back and checked,"
        + " %d hang-ups where the protocol asks for one", optionsAnswered, requestsAnswered, requestsRefused,
        bytesChecked / 1048576.0, hangUps);
  }
}
