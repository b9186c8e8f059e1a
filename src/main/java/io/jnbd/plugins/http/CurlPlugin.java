package io.jnbd.plugins.http;

/** The http plugin under nbdkit's name, so that {@code nbdkit curl ...} command lines work. */
public final class CurlPlugin extends HttpPlugin {
  @Override
  public String name() {
    return "curl";
  }
}
