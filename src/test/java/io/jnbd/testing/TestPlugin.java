package io.jnbd.testing;

import io.jnbd.api.Plugin;

/** A plugin that a test makes in code: a name and a description, and no parameters to configure. */
public abstract class TestPlugin implements Plugin {
  private final String name;
  private final String description;

  protected TestPlugin(String name, String description) {
    this.name = name;
    this.description = description;
  }

  @Override
  public final String name() {
    return name;
  }

  @Override
  public final String description() {
    return description;
  }

  /** Takes no key: the server passes every key=value on to the plugin, which refuses it. */
  @Override
  public boolean config(String key, String value) {
    return false;
  }
}
