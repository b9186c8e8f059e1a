package io.jnbd.server;

import io.jnbd.api.Errno;
import io.jnbd.api.Support;
import io.jnbd.protocol.Nbd.Cmd;
import io.jnbd.protocol.Nbd.CmdFlag;
import io.jnbd.protocol.Request;

/**
 * The checks every request passes before it reaches the export, with the error codes the NBD
 * specification asks for: EINVAL for unknown commands and flags, flags that do not apply,
 * commands not advertised, range errors and misalignment; ENOSPC for writes past the end; EPERM
 * for writes to a read-only export.
 */
final class Validation {
  private Validation() {}

  /** Why a request is refused. */
  record Rejection(Errno errno, String message) {}

  /** What is wrong with the request, or null when it may run. */
  static Rejection check(Request request, ServedExport export, Negotiation.Result negotiated) {
    int type = request.type();
    int flags = request.flags();
    if (type > Cmd.BLOCK_STATUS) {
      return invalid("unknown command " + type);
    }
    if ((flags & ~CmdFlag.KNOWN) != 0) {
      return invalid("unknown flags 0x" + Integer.toHexString(flags & ~CmdFlag.KNOWN));
    }
    boolean modifying = type == Cmd.WRITE || type == Cmd.WRITE_ZEROES || type == Cmd.TRIM;
    // Before the flag checks, as nbdkit does: on a read-only export the write itself is the fault.
    if (modifying && export.readOnly) {
      return new Rejection(Errno.EPERM, "export is read-only");
    }
    // Once SEND_FUA is advertised the server MUST accept FUA on every command (clients are known
    // to send it with FLUSH and READ); on a command that writes nothing it has no effect.
    if (request.has(CmdFlag.FUA) && export.fua == Support.NONE) {
      return invalid("FUA is not supported by this export");
    }
    if (request.has(CmdFlag.NO_HOLE) && type != Cmd.WRITE_ZEROES) {
      return invalid("NO_HOLE applies only to WRITE_ZEROES");
    }
    if (request.has(CmdFlag.FAST_ZERO) && (type != Cmd.WRITE_ZEROES || !export.canFastZero)) {
      return invalid("FAST_ZERO is not allowed on " + Cmd.name(type) + " here");
    }
    if (request.has(CmdFlag.DF) && (type != Cmd.READ || !negotiated.structuredReplies())) {
      return invalid("DF applies only to READ with structured replies");
    }
    if (request.has(CmdFlag.REQ_ONE) && type != Cmd.BLOCK_STATUS) {
      return invalid("REQ_ONE applies only to BLOCK_STATUS");
    }
    String unsupported = switch (type) {
      case Cmd.FLUSH -> export.canFlush ? null : "FLUSH is not supported by this export";
      case Cmd.TRIM -> export.canTrim ? null : "TRIM is not supported by this export";
      case Cmd.WRITE_ZEROES -> export.zero != Support.NONE ? null : "WRITE_ZEROES is not supported by this export";
      case Cmd.BLOCK_STATUS -> !negotiated.baseAllocation() ? "BLOCK_STATUS needs a metadata context (none was selected)"
          // A reply must carry at least one non-empty extent, which a zero-length request cannot have.
          : request.length() == 0 ? "BLOCK_STATUS of zero length" : null;
      case Cmd.READ -> request.length() <= export.maxPayload() ? null
          : "read of " + request.length() + " bytes is over the maximum of " + export.maxPayload();
      default -> null;
    };
    if (unsupported != null) {
      return invalid(unsupported);
    }
    if (type == Cmd.FLUSH) {
      return null;
    }
    if (!request.fitsIn(export.size)) {
      String message = "range " + Long.toUnsignedString(request.offset()) + "+" + request.length()
          + " is outside the export of " + export.size + " bytes";
      boolean growing = type == Cmd.WRITE || type == Cmd.WRITE_ZEROES;
      return new Rejection(growing ? Errno.ENOSPC : Errno.EINVAL, message);
    }
    int minimum = export.blockSize.minimum();
    if (minimum > 1 && (request.offset() % minimum != 0 || request.length() % minimum != 0)) {
      return invalid("request is not aligned to the minimum block size " + minimum);
    }
    return null;
  }

  private static Rejection invalid(String message) {
    return new Rejection(Errno.EINVAL, message);
  }
}
