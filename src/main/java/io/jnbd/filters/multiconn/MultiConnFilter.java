package io.jnbd.filters.multiconn;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.ThreadModel;
import io.jnbd.api.Values;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The multi-conn filter (nbdkit's): decides whether multi-conn is advertised and, in emulate
 * mode, earns it for a layer that lacks it by replaying each flush on every connection that may
 * hold unflushed writes or stale reads. Dirty tracking spares the layer below flushes that cannot
 * matter.
 *
 * <p>The connections, grouped by export name or all in one group, are shared by the whole server
 * and live here; membership and flush replay happen under one lock, so a connection cannot close
 * while another flushes it.
 */
public final class MultiConnFilter implements Filter {
  /** multi-conn-mode. */
  enum Mode {
    /** Disable under serialize-connections, else plugin where below has multi-conn, else emulate. */
    AUTO,
    /** Advertise multi-conn; a flush on one connection flushes every dirty one. */
    EMULATE,
    /** Advertise what below advertises; each flush stays on its connection. */
    PLUGIN,
    /** Advertise multi-conn whatever below does. */
    UNSAFE,
    /** Never advertise multi-conn. */
    DISABLE
  }

  /** multi-conn-track-dirty. */
  enum TrackDirty {
    /** One dirty bit for the group: any write since the last flush anywhere. */
    FAST,
    /** Per connection: its writes since its own last flush, its reads while the group was dirty. */
    CONNECTION,
    /** Every flush reaches the layer below. */
    OFF
  }

  private Mode mode = Mode.AUTO;
  private TrackDirty track = TrackDirty.CONNECTION;
  private boolean byExportName;
  private Settings settings = new Settings(mode, track, byExportName);
  private ThreadModel below = ThreadModel.PARALLEL;
  final ReentrantLock lock = new ReentrantLock();
  private final Map<String, FlushGroup> groups = new HashMap<>();

  /** The three keys, fixed once configured; any combination is allowed. */
  record Settings(Mode mode, TrackDirty track, boolean byExportName) {}

  @Override
  public String name() {
    return "multi-conn";
  }

  @Override
  public String description() {
    return "advertise, withhold or emulate multi-conn with consistent flushes across connections";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("multi-conn-mode", "auto|emulate|plugin|unsafe|disable",
            "auto (default): disable when connections are serialized, plugin when the layer below has multi-conn, else emulate. "
                + "emulate: advertise it, and replay each flush on every dirty connection (needs flush below). plugin: advertise what is below. "
                + "unsafe: always advertise it. disable: never advertise it."),
        new Parameter("multi-conn-track-dirty", "connection|fast|off",
            "Which flushes reach the layer below. connection (default): those of connections with writes since their last flush, "
                + "or reads while another wrote. fast: all, if anything was written anywhere since the last flush, else none. off: all."),
        new Parameter("multi-conn-exportname", "true|false",
            "true: replay flushes only on connections to the same export name. false (default): on every connection."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "multi-conn-mode" -> mode = choice(Mode.class, key, value);
      case "multi-conn-track-dirty" -> track = choice(TrackDirty.class, key, value);
      case "multi-conn-exportname" -> byExportName = Values.parseBool("multi-conn: " + key, value);
      default -> {
        return false;
      }
    }
    return true;
  }

  private static <E extends Enum<E>> E choice(Class<E> type, String key, String value) {
    List<String> names = new ArrayList<>();
    for (E constant : type.getEnumConstants()) {
      String name = constant.name().toLowerCase(Locale.ROOT);
      if (name.equals(value)) {
        return constant;
      }
      names.add(name);
    }
    throw new ConfigException("multi-conn: " + key + " must be one of " + String.join(", ", names) + ": '" + value + "'");
  }

  @Override
  public void configComplete() {
    settings = new Settings(mode, track, byExportName);
  }

  @Override
  public void threadModelBelow(ThreadModel model) {
    below = model;
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export export = next.open(readOnly, exportName);
    try {
      Mode resolved = resolve(export);
      if (resolved == Mode.EMULATE && !export.canFlush()) {
        throw new NbdException(Errno.EINVAL, "multi-conn: emulating multi-conn requires working flush");
      }
      return join(settings.byExportName() ? exportName : "", export, resolved);
    } catch (IOException | RuntimeException e) {
      export.close();
      throw e;
    }
  }

  private Mode resolve(Export export) throws IOException {
    if (settings.mode() != Mode.AUTO) {
      return settings.mode();
    }
    if (below == ThreadModel.SERIALIZE_CONNECTIONS) {
      return Mode.DISABLE;
    }
    return export.canMultiConn() ? Mode.PLUGIN : Mode.EMULATE;
  }

  private MultiConnExport join(String groupName, Export export, Mode resolved) throws IOException {
    lock.lock();
    try {
      FlushGroup group = groups.computeIfAbsent(groupName, FlushGroup::new);
      MultiConnExport member = new MultiConnExport(export, this, resolved, settings.track(), group);
      group.members.add(member);
      return member;
    } finally {
      lock.unlock();
    }
  }

  /** Takes a closing connection out of its group, so no flush is replayed on it any more. */
  void leave(MultiConnExport member) {
    lock.lock();
    try {
      FlushGroup group = member.group;
      group.members.remove(member);
      if (group.members.isEmpty()) {
        groups.remove(group.name);
      }
    } finally {
      lock.unlock();
    }
  }
}
