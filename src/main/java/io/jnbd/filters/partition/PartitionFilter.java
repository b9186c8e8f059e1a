package io.jnbd.filters.partition;

import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.Filter;
import io.jnbd.api.Layer;
import io.jnbd.api.Parameter;
import io.jnbd.api.Values;
import io.jnbd.filters.window.WindowExport;
import java.io.IOException;
import java.util.List;

/**
 * The partition filter: serves one partition of a disk with an MBR or GPT partition table (see
 * {@link PartitionTable}), like {@code qemu-nbd -P}. The table is read when a client opens the
 * export, so a client of a disk without that partition is refused at the handshake.
 */
public final class PartitionFilter implements Filter {
  /** The partition to serve, counting from 1; 0 until given. */
  private int partition;
  private Selection selection;

  /** Which partition to serve; one must have been given. */
  record Selection(int partition) {
    Selection {
      if (partition == 0) {
        throw new ConfigException("partition: the partition parameter is required (partition=N)");
      }
    }
  }

  @Override
  public String name() {
    return "partition";
  }

  @Override
  public String description() {
    return "serve one partition of an MBR or GPT partitioned disk";
  }

  @Override
  public List<Parameter> parameters() {
    return List.of(new Parameter("partition", "N",
        "(required) The partition to serve, counting from 1; 5 and up are MBR logical partitions."));
  }

  @Override
  public boolean config(String key, String value) {
    if (!key.equals("partition")) {
      return false;
    }
    partition = Values.parseInt("partition: " + key, value, 1, Integer.MAX_VALUE);
    return true;
  }

  @Override
  public void configComplete() {
    selection = new Selection(partition);
  }

  @Override
  public Export open(Layer next, boolean readOnly, String exportName) throws IOException {
    return WindowExport.open(next, readOnly, exportName, "partition", disk -> PartitionTable.find(disk, selection.partition()));
  }
}
