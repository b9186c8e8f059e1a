# Probes one NBD server with libnbd and prints, as JSON, everything a client can observe.
# Run against jnbd and nbdkit serving the same plugin configuration; the outputs are compared.
# Prints one KEY=JSON line per observation.
# Usage: probe.py UNIX_SOCKET WRITABLE(0|1)
import errno
import json
import sys

import nbd

socket_path = sys.argv[1]
writable = sys.argv[2] == "1"
MiB = 1 << 20
BLOCK = 64 * 1024  # both memory plugins allocate in pages that divide this
out = {}


def outcome(action):
    """'ok', the returned value, or the errno name the server answered with."""
    try:
        value = action()
        if isinstance(value, (bytes, bytearray)):
            return value.hex()
        return "ok" if value is None else value
    except nbd.Error as e:
        return "error:" + (errno.errorcode.get(e.errnum, str(e.errnum)) if e.errnum else "no-errno")


def connect(name="", structured=True, handshake_flags=None, contexts=(nbd.CONTEXT_BASE_ALLOCATION,)):
    h = nbd.NBD()
    h.set_strict_mode(0)  # let the server, not libnbd, judge every request
    h.set_request_structured_replies(structured)
    for context in contexts:
        h.add_meta_context(context)
    if handshake_flags is not None:
        h.set_handshake_flags(handshake_flags)
    h.set_export_name(name)
    h.connect_unix(socket_path)
    return h


def describe(h, prefix):
    out[prefix + "size"] = h.get_size()
    out[prefix + "read_only"] = h.is_read_only()
    out[prefix + "structured"] = h.get_structured_replies_negotiated()
    for flag in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_df",
                 "can_multi_conn", "can_cache", "is_rotational"):
        out[prefix + flag] = outcome(getattr(h, flag))
    out[prefix + "can_meta_context"] = outcome(lambda: h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))


def extents(h, offset, length, flags=0):
    found = []

    def collect(metacontext, off, entries, err):
        # The last extent may run past the request, by as much as a server likes: clip it.
        clipped, end = [], offset + length
        for i in range(0, len(entries), 2):
            if off >= end:
                break
            clipped += [min(entries[i], end - off), entries[i + 1]]
            off += entries[i]
        found.append([metacontext, clipped])
        return 0

    result = outcome(lambda: h.block_status(length, offset, collect, flags))
    return found if result == "ok" else result


def errors(h, prefix, size):
    # Out of range, zero length and unaligned: what each command answers.
    cases = {
        "pread_past_end": lambda: h.pread(512, size),
        "pread_straddling_end": lambda: h.pread(1024, size - 512),
        "pwrite_past_end": lambda: h.pwrite(b"x" * 512, size),
        "pwrite_straddling_end": lambda: h.pwrite(b"x" * 1024, size - 512),
        "trim_past_end": lambda: h.trim(512, size),
        "zero_past_end": lambda: h.zero(512, size),
        "cache_past_end": lambda: h.cache(512, size),
        "block_status_past_end": lambda: extents(h, size, 512),
        "pread_zero_length": lambda: h.pread(0, 0),
        "pwrite_zero_length": lambda: h.pwrite(b"", 0),
        "trim_zero_length": lambda: h.trim(0, 0),
        "zero_zero_length": lambda: h.zero(0, 0),
        "cache_zero_length": lambda: h.cache(0, 0),
        "flush": lambda: h.flush(),
        "cache": lambda: h.cache(BLOCK, 0),
        "pread_unaligned": lambda: h.pread(3, 1).hex(),
        "pwrite_fua": lambda: h.pwrite(b"\1" * 512, 0, nbd.CMD_FLAG_FUA),
        "pread_df": lambda: h.pread(512, 0, nbd.CMD_FLAG_DF).hex()[:8],
        "pread_req_one": lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE),
        "trim_fua": lambda: h.trim(BLOCK, 2 * BLOCK, nbd.CMD_FLAG_FUA),
        "zero_fua": lambda: h.zero(BLOCK, 2 * BLOCK, nbd.CMD_FLAG_FUA),
        "zero_fast": lambda: h.zero(BLOCK, 2 * BLOCK, nbd.CMD_FLAG_FAST_ZERO),
        "zero_no_hole": lambda: h.zero(BLOCK, 2 * BLOCK, nbd.CMD_FLAG_NO_HOLE),
        "pwrite_no_hole": lambda: h.pwrite(b"\1" * 512, 0, nbd.CMD_FLAG_NO_HOLE),
        "pwrite_unknown_flag": lambda: h.pwrite(b"\1" * 512, 0, 1 << 9),
    }
    if not h.can_fast_zero():
        # nbdkit 1.32 aborts on an unadvertised FAST_ZERO; jnbd's answer (EINVAL) is tested on its own.
        del cases["zero_fast"]
    for name, action in cases.items():
        out[prefix + name] = outcome(action)


def zero(h, count, offset, flags=0):
    """WRITE_ZEROES, or plain zeroes where the server has no zero command (nbdkit 1.32's cow filter)."""
    if h.can_zero():
        h.zero(count, offset, flags)
    else:
        h.pwrite(bytes(count), offset)


def data_and_extents(h, prefix, size):
    out[prefix + "fresh_extents"] = extents(h, 0, 4 * BLOCK)
    h.pwrite(bytes(range(256)) * (2 * BLOCK // 256), BLOCK)      # data in blocks 1-2
    h.pwrite(b"\xff" * BLOCK, 5 * BLOCK)                         # data in block 5
    h.pwrite(b"\xee" * BLOCK, 8 * BLOCK)
    h.trim(BLOCK, 8 * BLOCK)                                     # trim block 8
    h.pwrite(b"\xdd" * BLOCK, 10 * BLOCK)
    zero(h, BLOCK, 10 * BLOCK)                                   # zero block 10, may punch
    h.pwrite(b"\xcc" * BLOCK, 12 * BLOCK)
    zero(h, BLOCK, 12 * BLOCK, nbd.CMD_FLAG_NO_HOLE)             # zero block 12, keep allocated
    out[prefix + "extents"] = extents(h, 0, 16 * BLOCK)
    out[prefix + "extents_req_one"] = extents(h, 0, 16 * BLOCK, nbd.CMD_FLAG_REQ_ONE)
    out[prefix + "extents_inside_data"] = extents(h, BLOCK + 512, 1024, nbd.CMD_FLAG_REQ_ONE)
    out[prefix + "extents_zero_length"] = extents(h, 0, 0)
    out[prefix + "extents_to_end"] = extents(h, size - BLOCK, BLOCK)
    for block in (0, 1, 2, 5, 8, 10, 12):
        out[prefix + "read_block_%d" % block] = h.pread(BLOCK, block * BLOCK)[:4].hex()
    out[prefix + "read_unaligned"] = h.pread(3, BLOCK + 1).hex()
    h.pwrite(b"abc", BLOCK + 7)
    out[prefix + "unaligned_write_readback"] = h.pread(16, BLOCK).hex()


def in_flight(h, prefix):
    pattern = b"".join(bytes([i]) * 4096 for i in range(64))
    h.pwrite(pattern, 0)
    buffers = [nbd.Buffer(4096) for _ in range(64)]
    cookies = [h.aio_pread(buffers[i], i * 4096) for i in reversed(range(64))]
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for cookie in cookies:
        h.aio_command_completed(cookie)
    out[prefix + "in_flight_64"] = all(buffers[i].to_bytearray() == bytes([i]) * 4096 for i in range(64))


h = connect()
describe(h, "")
size = h.get_size()
out["block_size"] = [h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED),
                     h.get_block_size(nbd.SIZE_MAXIMUM)]
if writable:
    data_and_extents(h, "", size)
    in_flight(h, "")
errors(h, "", size)
out["block_status_without_context"] = "n/a"
h.shutdown()

h = connect(contexts=())
out["no_context_can_meta_context"] = outcome(lambda: h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))
out["no_context_block_status"] = extents(h, 0, 512)
h.shutdown()

h = connect(structured=False)
describe(h, "simple_")
errors(h, "simple_", size)
out["simple_block_status"] = extents(h, 0, 512)
h.shutdown()

# Handshake variants: EXPORT_NAME with and without the 124 zero bytes of padding.
for flags, label in ((0, "oldstyle_padded"), (nbd.HANDSHAKE_FLAG_NO_ZEROES, "oldstyle_no_zeroes"),
                     (nbd.HANDSHAKE_FLAG_FIXED_NEWSTYLE, "fixed_padded")):
    try:
        h = connect(handshake_flags=flags)
        out[label] = [h.get_size(), h.get_protocol(), h.get_structured_replies_negotiated(),
                      h.pread(4, 0).hex()]
        h.shutdown()
    except nbd.Error as e:
        out[label] = "error:" + str(e)

# Option negotiation by hand.
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix(socket_path)
exports = []
out["opt_list"] = outcome(lambda: h.opt_list(lambda name, description: exports.append(name) or 0))
out["opt_list_names"] = exports
contexts = []
out["list_meta_context"] = outcome(lambda: h.opt_list_meta_context(lambda name: contexts.append(name) or 0))
out["list_meta_context_names"] = contexts
h.set_export_name("")
out["opt_info_default"] = outcome(lambda: h.opt_info())
out["opt_info_default_size"] = outcome(lambda: h.get_size())
h.set_export_name("no-such-export")
out["opt_info_other_name"] = outcome(lambda: h.opt_info())
h.set_export_name("")
out["opt_go"] = outcome(lambda: h.opt_go())
out["opt_go_read"] = outcome(lambda: h.pread(4, 0).hex())
h.shutdown()

# LIST_META_CONTEXT with queries: exact names, namespace wildcards, contexts nobody serves.
for queries in (["base:allocation"], ["base:"], ["qemu:"], ["qemu:dirty-bitmap:"], ["x-unknown:thing"],
                ["base:allocation", "qemu:allocation-depth"]):
    h = nbd.NBD()
    h.set_opt_mode(True)
    for query in queries:
        h.add_meta_context(query)
    h.connect_unix(socket_path)
    found = []
    result = outcome(lambda: h.opt_list_meta_context(lambda name: found.append(name) or 0))
    out["list_meta_context " + " ".join(queries)] = [result, sorted(found)]
    h.opt_abort()

h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix(socket_path)
out["opt_abort"] = outcome(lambda: h.opt_abort())

for key in sorted(out):
    print(key + "=" + json.dumps(out[key]))
