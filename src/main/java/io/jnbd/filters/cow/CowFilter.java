package io.jnbd.filters.cow;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Errno;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.NbdException;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.PerExport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The cow filter: makes any export writable by keeping writes in a copy-on-write overlay that
 * is thrown away at exit; the layer below is opened read-only and never written. One {@link
 * Overlay} per export name, shared by every connection to that export.
 */
public final class CowFilter implements Filter {
  private static final Logger log = LoggerFactory.getLogger(CowFilter.class);
  static final int DEFAULT_BLOCK_SIZE = 64 * 1024;
  private static final int MIN_BLOCK_SIZE = 4096;
  private static final int MAX_BLOCK_SIZE = 32 << 20;

  private long blockSize = DEFAULT_BLOCK_SIZE;
  private boolean copyOnCache;
  private BooleanSupplier copyOnRead = () -> false;
  private boolean inMemory;
  private Settings settings = new Settings(blockSize, copyOnCache, copyOnRead, inMemory);

  /**
   * How overlays are made and filled; the block size is checked when built.
   *
   * @param copyOnRead asked at each read, as cow-on-read may follow a file
   */
  record Settings(long blockSize, boolean copyOnCache, BooleanSupplier copyOnRead, boolean inMemory) {
    Settings {
      if (Long.bitCount(blockSize) != 1 || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
        throw new ConfigException("cow: cow-block-size must be a power of 2 from 4K to 32M: " + blockSize);
      }
    }
  }

  private final PerExport<Overlay> overlays = new PerExport<>("cow", "the overlay");

  @Override
  public String name() {
    return "cow";
  }

  @Override
  public String description() {
    return "copy-on-write: writes go to a temporary overlay, the layer below is never written";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(
        new Parameter("cow-block-size", "SIZE", "Overlay block size, a power of 2 from 4K to 32M (default 64K)."),
        new Parameter("cow-on-cache", "true|false", "Copy the blocks of cache (prefetch) requests into the overlay (default false)."),
        new Parameter("cow-on-read", "true|false|/PATH", "Copy the blocks that clients read into the overlay; /PATH: while the file /PATH exists, checked at each read (default false)."),
        new Parameter("cow-storage", "file|memory", "Keep the overlay in a deleted sparse temporary file under TMPDIR (default /var/tmp), or in direct memory (default file)."));
  }

  @Override
  public boolean config(String key, String value) {
    switch (key) {
      case "cow-block-size" -> blockSize = Values.parseSize("cow: " + key, value);
      case "cow-on-cache" -> copyOnCache = Values.parseBool("cow: " + key, value);
      case "cow-on-read" -> copyOnRead = parseOnRead(key, value);
      case "cow-storage" -> {
        switch (value.trim().toLowerCase(Locale.ROOT)) {
          case "file" -> inMemory = false;
          case "memory" -> inMemory = true;
          default -> throw new ConfigException("cow: cow-storage must be file or memory: '" + value + "'");
        }
      }
      default -> {
        return false;
      }
    }
    return true;
  }

  /** A path switches copying on while the file exists, so a user can turn it on and off while serving. */
  private static BooleanSupplier parseOnRead(String key, String value) {
    if (value.startsWith("/")) {
      Path path = Path.of(value);
      return () -> Files.exists(path);
    }
    boolean on = Values.parseBool("cow: " + key, value);
    return () -> on;
  }

  @Override
  public void configComplete() {
    settings = new Settings(blockSize, copyOnCache, copyOnRead, inMemory);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    Export below = next.open(true, exportName);
    try {
      return new CowExport(below, overlayFor(exportName, below.size()), settings.copyOnRead(), settings.copyOnCache());
    } catch (IOException | RuntimeException e) {
      below.close();
      throw e;
    }
  }

  private Overlay overlayFor(String exportName, long size) throws IOException {
    return overlays.get(exportName, name -> {
      // The settings hold the block size to 32M.
      Overlay overlay = new Overlay(size, (int) settings.blockSize(), settings.inMemory(), overlayDirectory());
      log.debug("cow: export '{}': overlay of {} bytes in {}-byte blocks", name, size, settings.blockSize());
      return overlay;
    }, (name, overlay) -> {
      if (overlay.size() != size) {
        throw new NbdException(Errno.EIO, "cow: export '" + name + "' changed size from "
            + overlay.size() + " to " + size + " bytes; its overlay cannot follow");
      }
    });
  }

  /** TMPDIR, or /var/tmp as nbdkit uses, since /tmp is often memory and an overlay can be large. */
  private static Path overlayDirectory() {
    String tmpdir = System.getenv("TMPDIR");
    Path directory = Path.of(tmpdir != null && !tmpdir.isEmpty() ? tmpdir : "/var/tmp");
    return Files.isDirectory(directory) ? directory : null;
  }

  @Override
  public void unload() {
    overlays.closeAll((name, overlay) -> log.debug("cow: export '{}': {}", name, overlay.stats()));
  }

  /** The overlay of an export, once a client opened it; for tests. */
  Overlay overlayOf(String exportName) {
    return overlays.find(exportName);
  }
}
