#!/usr/bin/python3
"""jnbd benchmarks: jnbd and the reference servers side by side, in one invocation.

Every suite starts the servers itself on private Unix sockets, alternates them run by run, and
prints a table with the ratio of jnbd to the reference measured in the same run.

  core       file and memory plugins vs nbdkit, read by nbdcopy --no-extents (issue: jnbd core)
  http       http plugin vs nbdkit curl over a delayed origin, serial and parallel readers
  readahead  readahead+cache+http vs nbdkit and qemu's curl driver, serial/parallel/random readers
  memory     resident memory reading 1 GiB through readahead+cache with a 64M cache
  fuzz       the protocol fuzzer (ProtocolFuzzTest) with --fuzz-cases sessions instead of the
             few thousand every build runs; prints its thread, fd and memory figures

Run through bench/run, which builds the jar first. Work files live in bench/work (ignored by git).
"""
import argparse
import hashlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
JNBD = str(ROOT / "jnbd")
JAVA = os.path.join(os.environ.get("JAVA_HOME", "/usr"), "bin", "java")
OUT = Path("/dev/shm") / f"jnbd-bench-{os.getpid()}.out"
MiB = 1 << 20


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --- data ------------------------------------------------------------------------------------

def make_image(name, size, holes=False):
    """A file of random data (with zero runs when holes=True), made once and kept in bench/work."""
    path = WORK / name
    if path.exists() and path.stat().st_size == size:
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    log(f"making {path} ({size // MiB} MiB)")
    rng = random.Random(size)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(4 * MiB, size - written)
            if holes and rng.random() < 0.25:
                f.seek(n, os.SEEK_CUR)
            else:
                f.write(os.urandom(n))
            written += n
        f.truncate(size)
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


def warm(path):
    with open(path, "rb") as f:
        while f.read(8 * MiB):
            pass


# --- servers ---------------------------------------------------------------------------------

class Server:
    """An NBD server (jnbd or nbdkit) in the foreground on a private socket, for one measurement."""

    def __init__(self, label, argv):
        self.label = label
        self.dir = Path(tempfile.mkdtemp(prefix="jnbd-bench-"))
        self.sock = self.dir / "nbd.sock"
        self.pidfile = self.dir / "pid"
        program = JNBD if argv[0] == "jnbd" else argv[0]
        command = [program, "-f", "-U", str(self.sock), "--pidfile", str(self.pidfile)] + argv[1:]
        self.log = open(self.dir / "log", "w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while not self.pidfile.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{label}: server did not start: {' '.join(command)}\n"
                                 + (self.dir / "log").read_text())
            time.sleep(0.05)
        time.sleep(0.05)

    @property
    def uri(self):
        return f"nbd+unix:///?socket={self.sock}"

    def peak_rss_mib(self):
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Origin:
    """bench/Origin.java: one file over HTTP with a fixed delay per response, counting traffic."""

    def __init__(self, image, delay_ms):
        self.dir = Path(tempfile.mkdtemp(prefix="jnbd-origin-"))
        portfile = self.dir / "port"
        self.proc = subprocess.Popen([JAVA, str(ROOT / "bench" / "Origin.java"), str(image),
                                      str(delay_ms), str(portfile)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not portfile.exists() or not portfile.read_text():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("origin did not start")
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{portfile.read_text()}"
        self.url = self.base + "/disk.img"

    def _get(self, path):
        with urllib.request.urlopen(self.base + path) as r:
            return r.read().decode()

    def reset(self):
        self._get("/_reset")

    def stats(self):
        requests, nbytes = self._get("/_stats").split()
        return int(requests), int(nbytes)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- readers ---------------------------------------------------------------------------------

def nbdcopy(*options):
    return lambda uri, out: ["nbdcopy", *options, uri, out]


def qemu_img_convert(*options):
    return lambda uri, out: ["qemu-img", "convert", *options, "-f", "raw", "-O", "raw", uri, out]


def timed(argv, env=None):
    env = dict(os.environ, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""), **(env or {}))
    start = time.monotonic()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(argv)}\n{result.stderr.decode()}")
    return elapsed


RANDOM_READS = """
import nbd, os, random
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
size = h.get_size()
rng = random.Random(1234)
for _ in range({count}):
    h.pread(4096, rng.randrange(size // 4096) * 4096)
h.shutdown()
"""


def random_reads(count):
    def run(uri, _out):
        return ["/usr/bin/nbdsh", "-c", RANDOM_READS.format(count=count)], {"URI": uri}
    return run


def fmt_table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    return "\n".join(lines)


def measure(server_argv, label, reader, image_size, expect_sha=None, origin=None):
    """Runs one reader against a fresh server; returns seconds, peak RSS and origin traffic."""
    with Server(label, server_argv) as server:
        if origin:
            origin.reset()
        made = reader(server.uri, str(OUT))
        argv, env = made if isinstance(made, tuple) else (made, None)
        seconds = timed(argv, env)
        rss = server.peak_rss_mib()
    traffic = origin.stats() if origin else (0, 0)
    if expect_sha and OUT.exists():
        got = sha256(OUT)
        if got != expect_sha:
            raise SystemExit(f"{label}: WRONG DATA: sha256 {got} != {expect_sha}")
    OUT.unlink(missing_ok=True)
    return seconds, rss, traffic


# --- suites ----------------------------------------------------------------------------------

def suite_core(args):
    size = args.size_mib * MiB
    image = make_image(f"core-{args.size_mib}M.img", size)
    warm(image)
    fill = f"nbdcopy {image} \"$uri\""  # memory plugin: load the data, then measure the read
    cases = [
        ("file", ["-r", "file", f"file={image}"], None),
        ("memory", ["memory", f"size={size}"], fill),
    ]
    readers = [("nbdcopy --no-extents", ["--no-extents"]),
               ("nbdcopy --no-extents -R1 -C1", ["--no-extents", "--requests=1", "--connections=1"])]
    rows = []
    for plugin, plugin_argv, prepare in cases:
        for reader_label, options in readers:
            results = {"jnbd": [], "nbdkit": []}
            rss = {"jnbd": 0.0, "nbdkit": 0.0}
            for _ in range(args.runs):
                for name in ("nbdkit", "jnbd"):
                    with Server(name, [name] + plugin_argv) as server:
                        if prepare:
                            subprocess.run(["sh", "-c", prepare], check=True,
                                           env=dict(os.environ, uri=server.uri))
                        seconds = timed(["nbdcopy", *options, server.uri, "null:"])
                        results[name].append(size / MiB / seconds)
                        rss[name] = max(rss[name], server.peak_rss_mib())
            j, n = statistics.median(results["jnbd"]), statistics.median(results["nbdkit"])
            rows.append([plugin, reader_label, f"{j:.0f}", f"{n:.0f}", f"{j / n:.2f}",
                         f"{rss['jnbd']:.0f}", f"{rss['nbdkit']:.0f}"])
            log(rows[-1])
    print(fmt_table(f"core: {args.size_mib} MiB, median of {args.runs} runs (MiB/s; RSS = peak MiB)",
                    ["plugin", "reader", "jnbd", "nbdkit", "ratio", "jnbd RSS", "nbdkit RSS"], rows))


def http_rows(origin, image, size, sha, delay, readers, servers, runs):
    rows = []
    for reader_label, reader in readers:
        best = {}
        for _ in range(runs):
            for server_label, argv in servers:
                if argv is None:  # the reader talks to the origin itself (qemu's curl driver)
                    origin.reset()
                    seconds = timed(reader(origin.url, str(OUT)))
                    traffic, rss = origin.stats(), float("nan")
                    if sha256(OUT) != sha:
                        raise SystemExit(f"{server_label}: WRONG DATA")
                    OUT.unlink(missing_ok=True)
                else:
                    seconds, rss, traffic = measure(argv, server_label, reader, size, sha, origin)
                best.setdefault(server_label, []).append((seconds, rss, traffic))
        base = None
        for server_label, _ in servers:
            runs_of = best[server_label]
            seconds = statistics.median(r[0] for r in runs_of)
            _, rss, (requests, nbytes) = runs_of[-1]
            if base is None:
                base = seconds
            rows.append([f"{delay} ms", reader_label, server_label, f"{seconds:.2f}",
                         f"{size / MiB / seconds:.1f}", requests, f"{nbytes / size:.2f}",
                         f"{rss:.0f}", f"{base / seconds:.2f}x"])
            log(rows[-1])
    return rows


HTTP_HEADER = ["delay", "reader", "server", "seconds", "MiB/s", "origin reqs", "origin/size",
               "RSS MiB", "speed vs first"]


def suite_http(args):
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    readers = [("nbdcopy -R1 -C1 (serial)", nbdcopy("--requests=1", "--connections=1")),
               ("nbdcopy defaults (parallel)", nbdcopy())]
    rows = []
    for delay in args.delays:
        origin = Origin(image, delay)
        try:
            servers = [("nbdkit curl", ["nbdkit", "-r", "curl", f"url={origin.url}"]),
                       ("jnbd http preferred=4K", ["jnbd", "-r", "--filter=blocksize-policy", "http",
                                                   f"url={origin.url}", "blocksize-preferred=4K"]),
                       ("jnbd http", ["jnbd", "-r", "http", f"url={origin.url}"])]
            rows += http_rows(origin, image, size, sha, delay, readers, servers, args.runs)
        finally:
            origin.stop()
    print(fmt_table(f"http: {args.size_mib} MiB image, median of {args.runs} runs",
                    HTTP_HEADER, rows))


def suite_readahead(args):
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    filters = ["--filter=readahead", "--filter=cache"]
    readers = [
        ("nbdcopy -R1 -C1 256K", nbdcopy("--requests=1", "--connections=1")),
        ("nbdcopy -R1 -C1 64K", nbdcopy("--requests=1", "--connections=1", "--request-size=65536")),
        ("nbdcopy defaults", nbdcopy()),
        ("qemu-img convert", qemu_img_convert()),
    ]
    rows = []
    for delay in args.delays:
        origin = Origin(image, delay)
        try:
            servers = [
                ("nbdkit readahead+cache+curl", ["nbdkit", "-r", *filters, "curl", f"url={origin.url}"]),
                # nbdcopy raises its request size to the preferred block size (1M for http):
                # this row keeps the request sizes the reader names, the next shows the default.
                ("jnbd ... preferred=4K", ["jnbd", "-r", "--filter=blocksize-policy", *filters, "http",
                                           f"url={origin.url}", "blocksize-preferred=4K"]),
                ("jnbd readahead+cache+http", ["jnbd", "-r", *filters, "http", f"url={origin.url}"]),
            ]
            rows += http_rows(origin, image, size, sha, delay, readers, servers, args.runs)
            qemu_direct = [("qemu-img -m 1 curl readahead=4M", lambda url, out: [
                "qemu-img", "convert", "-m", "1", "-O", "raw",
                f'json:{{"file.driver":"http","file.url":"{url}","file.readahead":"4M"}}', out]),
                           ("qemu-img curl (defaults)", lambda url, out: [
                "qemu-img", "convert", "-O", "raw", f'json:{{"file.driver":"http","file.url":"{url}"}}', out])]
            for label, reader in qemu_direct:
                rows += http_rows(origin, image, size, sha, delay, [(label, reader)],
                                  [("qemu curl driver", None)], args.runs)
            random_servers = [
                ("jnbd cache+http", ["jnbd", "-r", "--filter=cache", "http", f"url={origin.url}"]),
                ("jnbd readahead+cache+http", ["jnbd", "-r", *filters, "http", f"url={origin.url}"]),
            ]
            rows += http_rows(origin, image, size, None, delay,
                              [(f"{args.random_reads} random 4K reads", random_reads(args.random_reads))],
                              random_servers, args.runs)
        finally:
            origin.stop()
    print(fmt_table(f"readahead: {args.size_mib} MiB image, median of {args.runs} runs",
                    HTTP_HEADER, rows))
    memory_check(args)


def memory_check(args):
    """Resident memory while reading a 1 GiB image through readahead+cache with cache-max-size=64M."""
    size = 1024 * MiB
    image = make_image("memory-1G.img", size)
    sha = sha256(image)
    origin = Origin(image, 0)
    try:
        argv = ["jnbd", "-r", "--filter=readahead", "--filter=cache", "http", f"url={origin.url}",
                "cache-max-size=64M"]
        seconds, rss, (requests, nbytes) = measure(
            argv, "memory", nbdcopy("--requests=1", "--connections=1"), size, sha, origin)
    finally:
        origin.stop()
    print(fmt_table("memory: 1 GiB image, readahead+cache (cache-max-size=64M), serial reader",
                    ["seconds", "MiB/s", "origin/size", "peak RSS MiB", "target"],
                    [[f"{seconds:.2f}", f"{size / MiB / seconds:.0f}", f"{nbytes / size:.2f}",
                      f"{rss:.0f}", "< 256"]]))


def suite_fuzz(args):
    """ProtocolFuzzTest at benchmark size: the sessions, live checks and figures it prints."""
    command = [str(ROOT / "mvnw"), "-B", "-q", "-Dtest=ProtocolFuzzTest", "-Dsurefire.failIfNoSpecifiedTests=false",
               f"-Djnbd.fuzz.cases={args.fuzz_cases}",
               # JUnit's default limit per test (junit-platform.properties) is for the build's size.
               "-Djunit.jupiter.execution.timeout.default=6h", "test"]
    if args.fuzz_seed is not None:
        command.insert(-1, f"-Djnbd.fuzz.seed={args.fuzz_seed}")
    log(" ".join(command))
    result = subprocess.run(command, cwd=ROOT)
    output = ROOT / "target" / "surefire-reports" / "io.jnbd.server.ProtocolFuzzTest-output.txt"
    if output.exists():
        print("\n".join(line for line in output.read_text().splitlines() if line.startswith("fuzz:")))
    if result.returncode != 0:
        raise SystemExit("fuzz: FAILED; the seed and the session are in "
                         "target/surefire-reports/io.jnbd.server.ProtocolFuzzTest.txt")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="*", default=["core", "http", "readahead"],
                        choices=["core", "http", "readahead", "memory", "fuzz"])
    parser.add_argument("--runs", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--size-mib", type=int, default=None,
                        help="image size (default: 1024 for core, 256 for http and readahead)")
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 20],
                        help="origin delays in ms (http and readahead; the issue asks for 0 20 and 20 50)")
    parser.add_argument("--random-reads", type=int, default=2000)
    parser.add_argument("--fuzz-cases", type=int, default=50000, help="random sessions for the fuzz suite")
    parser.add_argument("--fuzz-seed", type=int, default=None, help="replay a fuzz run (default: a new seed)")
    args = parser.parse_args()
    for suite in args.suite:
        suite_args = argparse.Namespace(**vars(args))
        if suite_args.size_mib is None:
            suite_args.size_mib = 1024 if suite == "core" else 256
        {"core": suite_core, "http": suite_http, "readahead": suite_readahead,
         "memory": memory_check, "fuzz": suite_fuzz}[suite](suite_args)
        print()


if __name__ == "__main__":
    main()
