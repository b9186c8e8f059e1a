package io.jnbd.api;

import java.util.List;

/**
 * What plugins and filters share: a name, help, and key=value configuration.
 *
 * <p>The server calls {@link #config} once for each key=value on the command line, in order (a
 * key may repeat), then {@link #configComplete} once. Filters see every key first: a filter
 * returns {@code false} from {@code config} for keys that are not its own, and they travel on to
 * the next filter and finally the plugin, which must reject keys it does not know.
 *
 * <p>The built-in layers configure themselves one way: {@code config} parses each value into a
 * plain field, refusing there only what cannot be read as that key's kind of value; {@code
 * configComplete} builds from the fields an immutable settings record whose constructor checks
 * limits and combinations; and what runs later (open, requests, unload) reads only the record.
 */
public interface Configurable {
  /** The name used on the command line, e.g. {@code memory} or {@code readahead}. */
  String name();

  /** One line for listings and the first line of {@code --help}. */
  String description();

  /** Every key this layer accepts, for help output. */
  default List<Parameter> parameters() {
    return List.of();
  }

  /**
   * Takes one key=value.
   *
   * @return true if the key was this layer's; false to pass it on (filters only: a plugin must
   *     throw for an unknown key)
   * @throws ConfigException for a bad value, or an unknown key in a plugin
   */
  boolean config(String key, String value);

  /** Called once after the last key; checks required keys and prepares shared state. */
  default void configComplete() {}

  /** The most concurrency this layer accepts. */
  default ThreadModel threadModel() {
    return ThreadModel.PARALLEL;
  }

  /** Called once when a server takes this layer, before any client connects. */
  default void attach(ServerHandle server) {}

  /** Called once when the server shuts down, after the last connection closed. */
  default void unload() {}

  /** Extra lines for {@code --dump-plugin}, each {@code key=value}. */
  default List<String> dumpLines() {
    return List.of();
  }
}
