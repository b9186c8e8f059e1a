# Runs a list of NBD requests against one server with libnbd and prints what the client saw, one
# KEY=JSON line each: the export's size and flags, then each request's outcome (read data as hex,
# or its sha256 when long; "ok"; or the errno name). Run against jnbd and nbdkit with the same
# configuration; the outputs are compared.
# Usage: ops.py UNIX_SOCKET JSON_LIST_OF_REQUESTS, each one of
#   ["pread", length, offset]   ["pwrite", length, offset, byte]  ["pwrite_hex", "hex", offset]
#   ["trim", length, offset]    ["zero", length, offset, flags]   ["cache", length, offset]
#   ["extents", length, offset, flags]                            ["flush"]
# where flags are libnbd's CMD_FLAG_* names joined by "|", or "".
import errno
import hashlib
import json
import sys

import nbd

socket_path = sys.argv[1]
requests = json.loads(sys.argv[2])
out = {}


def flags(names):
    value = 0
    for name in filter(None, names.split("|")):
        value |= getattr(nbd, "CMD_FLAG_" + name)
    return value


def extents(length, offset, names):
    found = []

    def collect(metacontext, off, entries, err):
        # A server may describe more than was asked; compare only what was.
        end = offset + length
        for i in range(0, len(entries), 2):
            if off < end:
                found.append([off, min(entries[i], end - off), entries[i + 1]])
            off += entries[i]
        return 0

    h.block_status(length, offset, collect, flags(names))
    return found


def run(request):
    kind, args = request[0], request[1:]
    if kind == "pread":
        data = h.pread(args[0], args[1])
        return data.hex() if len(data) <= 64 else "sha256:" + hashlib.sha256(data).hexdigest()
    if kind == "pwrite":
        return h.pwrite(bytes([args[2]]) * args[0], args[1])
    if kind == "pwrite_hex":
        return h.pwrite(bytes.fromhex(args[0]), args[1])
    if kind == "trim":
        return h.trim(args[0], args[1])
    if kind == "zero":
        return h.zero(args[0], args[1], flags(args[2]))
    if kind == "cache":
        return h.cache(args[0], args[1])
    if kind == "extents":
        return extents(args[0], args[1], args[2])
    if kind == "flush":
        return h.flush()
    raise ValueError("unknown request " + kind)


def outcome(request):
    try:
        value = run(request)
        return "ok" if value is None else value
    except nbd.Error as e:
        return "error:" + (errno.errorcode.get(e.errnum, str(e.errnum)) if e.errnum else "no-errno")


h = nbd.NBD()
h.set_strict_mode(0)  # let the server, not libnbd, judge every request
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
try:
    h.connect_unix(socket_path)
except nbd.Error as e:
    print("connect=" + json.dumps("error:" + (errno.errorcode.get(e.errnum, str(e.errnum)) if e.errnum else "no-errno")))
    sys.exit(0)
out["size"] = h.get_size()
for flag in ("is_read_only", "can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero",
             "can_multi_conn", "can_cache"):
    out[flag] = getattr(h, flag)()
# nbdkit 1.32 sends block sizes only when a layer sets them; jnbd always does, minimum 1.
out["minimum_block_size"] = max(1, h.get_block_size(nbd.SIZE_MINIMUM))
for i, request in enumerate(requests):
    out["%02d %s" % (i, json.dumps(request))] = outcome(request)
h.shutdown()
for key in sorted(out):
    print(key + "=" + json.dumps(out[key]))
