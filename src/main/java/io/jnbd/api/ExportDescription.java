package io.jnbd.api;

/**
 * One entry of an export listing (NBD_OPT_LIST, {@code nbdinfo --list}).
 *
 * @param name the export name clients ask for
 * @param description a human-readable description, or the empty string
 */
public record ExportDescription(String name, String description) {
  public ExportDescription {
    if (name == null || description == null) {
      throw new NullPointerException("export name and description must not be null");
    }
  }
}
