#!/usr/bin/python3
"""jnbd benchmarks: jnbd and the reference servers side by side, in one invocation.

Every suite starts the servers itself on private Unix sockets, alternates them run by run, and
prints a table with the ratio of jnbd to the reference measured in the same run.

  core       file and memory plugins vs nbdkit, read by nbdcopy --no-extents (issue: jnbd core)
  http       http plugin vs nbdkit curl over a delayed origin, serial and parallel readers; then
             CPU-bound over a local nginx, plain HTTP and HTTPS, with server CPU
  readahead  readahead+cache+http vs nbdkit and qemu's curl driver, serial/parallel/random readers
  fault      readahead+cache+http vs nbdkit when the origin goes away for 2 s mid-copy (the copy
             must be identical) and when its image changes mid-copy (the copy must fail); and
             virt-v2v's line (retry, cacheextents, cow over http) across the outage
  jit        jnbd under JIT settings (--jit: the launcher's, tiered, ...) reading file, http and https
             (local nginx) by nbdcopy, speed and server CPU, nbdkit beside it for http and https; with
             --jit-edit LABEL='-XX:...', the launcher's own options edited, a server's first copy and
             its --later-copies, with the JIT compiler threads' CPU
  v2v        virt-v2v's remote-input line, jnbd vs nbdkit, copied by nbdcopy --requests=64 --flush
             over a delayed origin (--delays); the issue asks for at least 4x nbdkit at 20 ms
  memory     jnbd's resident memory reading 1 GiB through readahead+cache with cache-max-size=64M
  soak       memory and readahead+cache+http vs nbdkit for --soak-seconds (default 120): 64 connections
             x 16 requests in flight, every reply verified, plus 16 clients that never read their
             replies; RSS, threads, fds, errors and per-client progress per 10 s window, PASS/FAIL
             against jnbd's RSS bound (data held + a fixed overhead), no errors, no stall
  tls        the memory plugin read by nbdcopy over TLS (x509, --tls=require), jnbd vs nbdkit;
             certificates made with openssl in bench/work
  footprint  start-up and idle cost, nbdkit beside jnbd from the checkout (./jnbd) and from the
             release tarball installed into bench/work/install (built with -Pdist when older than
             the jar): --version, a captive --run true, time until the pidfile exists, CPU spent
             starting, idle RSS; JAVA_HOME unset; the median of --runs (default 7), alternated;
             then the memory rows (checkout only): the memory plugin holding 1 GiB written (peak
             RSS, longest GC pause), idle RSS of memory 1G, peak RSS of an nbdcopy of 1 GiB from file;
             then the CPU and speed rows: steady-state server CPU (2 GiB from file, the http image
             from a local nginx with and without readahead+cache), a fresh server's copy over HTTPS
             and plain HTTP, and the link suite's serial reader (at most 3 runs)
  link       a serial reader (nbdcopy -R1 -C1) through readahead+cache+http, --size-mib (default
             256) from an origin 50 ms per response behind a 200 MiB/s link, jnbd vs nbdkit, and
             each time as a multiple of the link's own limit (size / rate); the footprint issue
             asks for at most 1.25x
  fuzz       the protocol fuzzer (ProtocolFuzzTest) with --fuzz-cases sessions instead of the
             few thousand every build runs; prints its thread, fd and memory figures

Run through bench/run, which builds the jar first. Work files live in bench/work (ignored by git).
With JNBD_BENCH_ORIGIN_LOG=FILE, every origin appends a line per response to FILE: when the request
arrived (ms since the epoch), offset, length, and how long the response took (bench/Origin.java).
"""
import argparse
import ctypes
import errno
import fcntl
import hashlib
import math
import mmap
import multiprocessing
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import urllib.request
from pathlib import Path

import nbd

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

    def __init__(self, label, argv, env=None):
        self.label = label
        self.dir = Path(tempfile.mkdtemp(prefix="jnbd-bench-"))
        self.sock = self.dir / "nbd.sock"
        self.pidfile = self.dir / "pid"
        program = JNBD if argv[0] == "jnbd" else argv[0]
        command = [program, "-f", "-U", str(self.sock), "--pidfile", str(self.pidfile)] + argv[1:]
        self.log = open(self.dir / "log", "w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        deadline = time.time() + 120
        while not self.pidfile.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                if self.proc.poll() is None:  # too slow: never leave it running behind us
                    self.proc.kill()
                raise SystemExit(f"{label}: server did not start (exit status {self.proc.poll()}): {' '.join(command)}\n"
                                 + (self.dir / "log").read_text())
            time.sleep(0.05)
        time.sleep(0.05)

    @property
    def uri(self):
        return f"nbd+unix:///?socket={self.sock}"

    def _status(self, field):
        """A number from /proc/PID/status (kB for memory fields), or None once the server is gone."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def peak_rss_mib(self):
        kib = self._status("VmHWM")
        return float("nan") if kib is None else kib / 1024

    def rss_mib(self):
        kib = self._status("VmRSS")
        return float("nan") if kib is None else kib / 1024

    def threads(self):
        return self._status("Threads")

    def open_fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def cpu_seconds(self):
        """User + system CPU time the server has used so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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

    def __init__(self, image, delay_ms, link_mib_per_s=0):
        self.dir = Path(tempfile.mkdtemp(prefix="jnbd-origin-"))
        portfile = self.dir / "port"
        request_log = os.environ.get("JNBD_BENCH_ORIGIN_LOG")
        self.proc = subprocess.Popen([JAVA, str(ROOT / "bench" / "Origin.java"), str(image),
                                      str(delay_ms), str(portfile), str(link_mib_per_s),
                                      *([request_log] if request_log else [])],
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
        # After an outage (fault suite) the origin listens again only a while later.
        deadline = time.time() + 10
        while True:
            try:
                self._get("/_reset")
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def arm(self, fault):
        """Arms a fault of bench/Origin.java, e.g. 'change_at=1048576'."""
        self._get("/_fault?" + fault)

    def stats(self):
        requests, nbytes = self._get("/_stats").split()
        return int(requests), int(nbytes)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    """A local nginx serving one image over plain HTTP and over TLS (self-signed RSA 2048), with no
    delay: the origin for the CPU-bound rows, where the server's own cost decides the speed."""

    def __init__(self, image):
        self.dir = Path(tempfile.mkdtemp(prefix="jnbd-nginx-"))
        os.chmod(self.dir, 0o755)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", str(self.dir / "key.pem"),
                        "-out", str(self.dir / "cert.pem")], check=True, capture_output=True)
        ports = [free_port(), free_port()]
        temp = "".join(f"  {kind}_temp_path {self.dir}/{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(f"""
daemon off;
worker_processes 2;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
{temp}  server {{ listen 127.0.0.1:{ports[0]}; root {image.parent}; }}
  server {{
    listen 127.0.0.1:{ports[1]} ssl;
    ssl_certificate {self.dir}/cert.pem;
    ssl_certificate_key {self.dir}/key.pem;
    root {image.parent};
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.urls = {"http": f"http://127.0.0.1:{ports[0]}/{image.name}",
                     "https": f"https://127.0.0.1:{ports[1]}/{image.name}"}
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", ports[1]), 1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("nginx did not start: " + (self.dir / "error.log").read_text())
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- readers ---------------------------------------------------------------------------------

def nbdcopy(*options):
    return lambda uri, out: ["nbdcopy", *options, uri, out]


def qemu_img_convert(*options):
    return lambda uri, out: ["qemu-img", "convert", *options, "-f", "raw", "-O", "raw", uri, out]


# The slowest reader that finishes (nbdkit, serial 64K reads at 50 ms) takes ~210 s; qemu's curl
# driver was once seen waiting forever on connections the origin had closed.
READER_TIMEOUT_S = 900


class ReaderHung(SystemExit):
    """A reader killed after READER_TIMEOUT_S; ends the suite unless the caller expects it."""


def timed(argv, env=None):
    env = dict(os.environ, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""), **(env or {}))
    start = time.monotonic()
    try:
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                timeout=READER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ReaderHung(f"no end after {READER_TIMEOUT_S} s, killed: {' '.join(argv)}")
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
        # Filters that leave READs alone, as in virt-v2v's stacks: zero-copy must pass them.
        ("file+cacheextents+noextents", ["-r", "--filter=cacheextents", "--filter=noextents", "file", f"file={image}"], None),
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
                    try:
                        seconds = timed(reader(origin.url, str(OUT)))
                    except ReaderHung as hung:
                        # A reference that hangs (qemu's curl driver on connections the origin
                        # closed) is a row without a time, not the end of the suite.
                        log(f"{server_label}: {hung}")
                        seconds = float("nan")
                    else:
                        if sha256(OUT) != sha:
                            raise SystemExit(f"{server_label}: WRONG DATA")
                    traffic, rss = origin.stats(), float("nan")
                    OUT.unlink(missing_ok=True)
                else:
                    seconds, rss, traffic = measure(argv, server_label, reader, size, sha, origin)
                best.setdefault(server_label, []).append((seconds, rss, traffic))
        base = None
        for server_label, _ in servers:
            runs_of = best[server_label]
            finished = [r[0] for r in runs_of if not math.isnan(r[0])]
            seconds = statistics.median(finished) if finished else float("nan")
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


def copy_with_cpu(label, argv, env, reader, sha, prepare=None):
    """One copy from a fresh server: seconds, server CPU seconds to start (and to run `prepare`, a
    shell command given $uri), and CPU during the copy."""
    with Server(label, argv, env) as server:
        if prepare:
            subprocess.run(["sh", "-c", prepare], check=True, env=dict(os.environ, uri=server.uri))
        started = server.cpu_seconds()
        seconds = timed(reader(server.uri, str(OUT)))
        copying = server.cpu_seconds() - started
    if sha256(OUT) != sha:
        raise SystemExit(f"{label}: WRONG DATA")
    OUT.unlink(missing_ok=True)
    return seconds, started, copying


def cpu_rows(title, cases, runs, sha, size):
    """cases: (row label, [(server label, argv, env)...], prepare command or None); servers
    alternate run by run. The ratios compare each server with the first of its case."""
    rows = []
    for case_label, servers, prepare in cases:
        results = {}
        for _ in range(runs):
            for label, argv, env in servers:
                results.setdefault(label, []).append(copy_with_cpu(label, argv, env, nbdcopy(), sha, prepare))
        first = None
        for label, _, _ in servers:
            seconds = statistics.median(r[0] for r in results[label])
            start_cpu = statistics.median(r[1] for r in results[label])
            copy_cpu = statistics.median(r[2] for r in results[label])
            spread = max(r[0] for r in results[label]) - min(r[0] for r in results[label])
            first = first or (seconds, copy_cpu)
            rows.append([case_label, label, f"{seconds:.2f}", f"±{spread / 2:.2f}", f"{size / MiB / seconds:.0f}",
                         f"{first[0] / seconds:.2f}x", f"{start_cpu:.2f}", f"{copy_cpu:.2f}",
                         f"{copy_cpu / first[1]:.2f}x"])
            log(rows[-1])
    return fmt_table(title, ["origin", "server", "seconds", "spread", "MiB/s", "speed vs first",
                             "CPU start s", "CPU copy s", "CPU copy vs first"], rows)


def nginx_cases(nginx, jnbd_variants):
    """nbdkit curl and jnbd's http plugin (one entry per JAVA_OPTS variant) over HTTP and HTTPS. A
    variant's environment may be a function of jnbd's command line."""
    cases = []
    for scheme in ("http", "https"):
        url = nginx.urls[scheme]
        tls = ["sslverify=false"] if scheme == "https" else []
        servers = [("nbdkit curl", ["nbdkit", "-r", "curl", f"url={url}", *tls], None)]
        jnbd = ["jnbd", "-r", "http", f"url={url}", *tls]
        servers += [(label, jnbd, env(jnbd) if callable(env) else env) for label, env in jnbd_variants]
        cases.append((f"nginx {scheme}", servers, None))
    return cases


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
    print()
    nginx = Nginx(image)
    try:
        print(cpu_rows(f"http, CPU-bound: {args.size_mib} MiB from a local nginx (no delay), nbdcopy defaults, "
                       f"a fresh server per copy, median of {args.runs} runs (spread: half the range); server CPU "
                       f"from /proc/PID/stat utime+stime, to start (until the pidfile) and during the copy",
                       nginx_cases(nginx, [("jnbd http", None)]), args.runs, sha, size))
    finally:
        nginx.stop()


JIT_VARIANTS = {
    "launcher": None,  # ./jnbd's own JAVA_OPTS default (C1 only unless the command line speaks TLS)
    "C1 only": "-XX:TieredStopAtLevel=1",
    "tiered": "",
    "tiered, C2 from start": "-XX:-TieredCompilation",
    "tiered, compile sooner": "-XX:CompileThresholdScaling=0.2",
    # the launcher's choice for https:// before bin/c2-crypto.json applied to it
    "tiered, crypto sooner": "-XX:CompileCommand=quiet -XX:CompileCommand=CompileThresholdScaling,com.sun.crypto.provider.*::*,0.01",
}


def jit_variants(names):
    base = "--enable-native-access=ALL-UNNAMED -XX:MaxRAMPercentage=50 -Xms16m"
    return [(f"jnbd {name}", None if JIT_VARIANTS[name] is None
             else {"JAVA_OPTS": f"{base} {JIT_VARIANTS[name]}".strip()}) for name in names]


def launcher_options(argv):
    """The JVM options ./jnbd chooses for this command line (bin/jvm-options.sh), as a list."""
    script = f'jnbd_options_dir="{ROOT}/bin"; . "$jnbd_options_dir/jvm-options.sh"; printf %s "$jnbd_jvm_options"'
    return subprocess.run(["sh", "-c", script, "jnbd", *argv], capture_output=True, text=True, check=True).stdout.split()


def edited_options(options, edits):
    """OPTIONS with EDITS (words) applied: -XX:+F, -XX:-F and -XX:F=V replace the option of that name
    or are added, !-XX:F drops it; -XX:CompileCommand=... adds one; -XX:+Unlock... goes first."""
    options = list(options)
    for edit in edits.split():
        drop = edit.startswith("!")
        edit = edit.lstrip("!")
        name = re.sub(r"^-XX:[+-]", "-XX:", edit).split("=")[0]
        if edit.startswith("-XX:+Unlock"):
            if edit not in options:
                options.insert(0, edit)
            continue
        if name != "-XX:CompileCommand":
            options = [o for o in options if re.sub(r"^-XX:[+-]", "-XX:", o).split("=")[0] != name]
        if not drop:
            options.append(edit)
    return options


def first_and_later_copies(label, argv, env, later):
    """A fresh server's CPU to start, then for its first copy and each of LATER more (nbdcopy to
    null:): seconds, server CPU and the JIT compiler threads' CPU."""
    def compiler_cpu(pid):
        ticks = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                if "Compiler" in (task / "comm").read_text():
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    ticks += int(fields[11]) + int(fields[12])
            except OSError:
                pass  # a thread that ended meanwhile
        return ticks / os.sysconf("SC_CLK_TCK")
    with Server(label, argv, env) as server:
        start = server.cpu_seconds()
        copies = []
        for _ in range(1 + later):
            cpu, jit = server.cpu_seconds(), compiler_cpu(server.proc.pid)
            seconds = timed(["nbdcopy", server.uri, "null:"])
            copies.append((seconds, server.cpu_seconds() - cpu, compiler_cpu(server.proc.pid) - jit))
    return start, copies


def later_copy_rows(title, cases, runs, later):
    """cases as for cpu_rows, each server kept for 1 + LATER copies; servers alternate run by run."""
    rows = []
    for case_label, servers, _ in cases:
        results = {label: [] for label, _, _ in servers}
        for _ in range(runs):
            for label, argv, env in servers:
                results[label].append(first_and_later_copies(label, argv, env, later))
        for label, _, _ in servers:
            firsts = [copies[0] for _, copies in results[label]]
            laters = [copy for _, copies in results[label] for copy in copies[1:]]
            cell = lambda values: f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
            rows.append([case_label, label, f"{statistics.median(start for start, _ in results[label]):.2f}",
                         f"{statistics.median(c[0] for c in firsts):.2f}", cell([c[1] for c in firsts]),
                         f"{statistics.median(c[2] for c in firsts):.2f}",
                         f"{statistics.median(c[0] for c in laters):.2f}", cell([c[1] for c in laters]),
                         f"{statistics.median(c[2] for c in laters):.2f}"])
            log(rows[-1])
    return fmt_table(title, ["origin", "server", "CPU start s", "1st copy s", "1st copy CPU s", "1st JIT s",
                             "later s", "later CPU s", "later JIT s"], rows)


def suite_jit(args):
    """The JIT settings of the launcher across the plugins: file and memory (the memory plugin
    filled first) and http/https from a local nginx, read by nbdcopy from a fresh server, speed and
    server CPU side by side. With --jit-edit instead: http and https only, the launcher against each
    edit of its own options, each server kept for --later-copies more copies (the JIT's work moves
    between a first copy and the next ones)."""
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    warm(image)
    variants = jit_variants(args.jit)
    nginx = Nginx(image)
    try:
        if args.jit_edit:
            edits = [edit.split("=", 1) for edit in args.jit_edit]
            variants = [("jnbd launcher", None)] + [
                (f"jnbd {label}", lambda argv, words=words: {"JAVA_OPTS": " ".join(edited_options(launcher_options(argv[1:]), words))})
                for label, words in edits]
            print(later_copy_rows(f"jit: {args.size_mib} MiB, nbdcopy defaults to null:, a fresh server per run kept for "
                                  f"{1 + args.later_copies} copies, median of {args.runs} runs (later: over all its later "
                                  f"copies); JIT: the compiler threads' CPU; edits of the launcher's options: "
                                  + "; ".join(f"{label} = {words}" for label, words in edits)
                                  + f"; load average {os.getloadavg()[0]:.1f} at the end",
                                  nginx_cases(nginx, variants), args.runs, args.later_copies))
            return
        cases = [("file", [(label, ["jnbd", "-r", "file", f"file={image}"], env) for label, env in variants], None),
                 ("memory", [(label, ["jnbd", "memory", f"size={size}"], env) for label, env in variants],
                  f"nbdcopy {image} \"$uri\"")]
        cases += nginx_cases(nginx, variants)
        print(cpu_rows(f"jit: {args.size_mib} MiB, nbdcopy defaults, a fresh server per copy, median of {args.runs} "
                       f"runs; JAVA_OPTS variants: " + "; ".join(f"{n} = {JIT_VARIANTS[n] or 'default'}"
                                                                 for n in args.jit),
                       cases, args.runs, sha, size))
    finally:
        nginx.stop()


def suite_readahead(args):
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    filters = ["--filter=readahead", "--filter=cache"]
    # nbdcopy's request size: 256K, or the server's preferred block size when larger (jnbd's http: 1M).
    readers = [
        ("nbdcopy -R1 -C1", nbdcopy("--requests=1", "--connections=1")),
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


LINK_DELAY_MS = 50       # the link suite: a far origin...
LINK_MIB_PER_S = 200     # ...behind a link of this rate


def suite_link(args):
    """A serial reader through readahead+cache+http from an origin 50 ms away behind a 200 MiB/s
    link: how close jnbd comes to the link's own limit (the image's size over the link's rate)."""
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    filters = ["--filter=readahead", "--filter=cache"]
    # nbdcopy's request size: 256K, or the server's preferred block size when larger (jnbd's http: 1M).
    readers = [("nbdcopy -R1 -C1", nbdcopy("--requests=1", "--connections=1"))]
    origin = Origin(image, LINK_DELAY_MS, LINK_MIB_PER_S)
    try:
        servers = [("jnbd readahead+cache+http", ["jnbd", "-r", *filters, "http", f"url={origin.url}"]),
                   ("nbdkit readahead+cache+curl", ["nbdkit", "-r", *filters, "curl", f"url={origin.url}"])]
        rows = http_rows(origin, image, size, sha, LINK_DELAY_MS, readers, servers, args.runs)
    finally:
        origin.stop()
    limit = size / MiB / LINK_MIB_PER_S
    for row in rows:
        row.append(f"{float(row[3]) / limit:.2f}x")
    print(fmt_table(f"link: {args.size_mib} MiB, origin {LINK_DELAY_MS} ms per response behind a "
                    f"{LINK_MIB_PER_S} MiB/s link (its limit: {limit:.2f} s), median of {args.runs} runs",
                    HTTP_HEADER + ["x the link's limit"], rows))


# virt-v2v's server line for a remote input (its -i vmx / vCenter paths), jnbd and nbdkit alike;
# Server adds --foreground, --unix and --pidfile.
V2V_FILTERS = ["--filter=retry", "--filter=cacheextents", "--filter=cow"]


def v2v_servers(url):
    common = ["--threads", "16", "-D", "nbdkit.backend.datapath=0", "--readonly", *V2V_FILTERS]
    return [("jnbd, virt-v2v's line", ["jnbd", *common, "http", f"url={url}", "timeout=2000"]),
            ("nbdkit, virt-v2v's line", ["nbdkit", *common, "curl", f"url={url}", "timeout=2000"])]


def copy_outcomes(args, origin, fault, label, argv, sha, copy_options):
    """Copies the image args.runs times through a fresh server with the fault armed; (outcomes, seconds)."""
    outcomes, seconds = [], []
    for _ in range(args.runs):
        origin.reset()
        if fault:
            origin.arm(fault)
        with Server(label, argv) as server:
            start = time.monotonic()
            result = subprocess.run(["nbdcopy", *copy_options, server.uri, str(OUT)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            seconds.append(time.monotonic() - start)
        if result.returncode != 0:
            outcomes.append("copy failed")
        else:
            outcomes.append("identical" if sha256(OUT) == sha else "WRONG DATA")
        OUT.unlink(missing_ok=True)
    return outcomes, seconds


def fault_rows(args, origin, servers, scenarios, sha, delay, copy_options, missed):
    rows = []
    for scenario, fault, must_copy in scenarios:
        for label, argv in servers:
            outcomes, seconds = copy_outcomes(args, origin, fault, label, argv, sha, copy_options)
            required = "identical" if must_copy else "copy failed"
            if label.startswith("jnbd"):
                met = all(o == required for o in outcomes)
                verdict = "yes" if met else "NO"
                if not met:
                    missed.append(f"{scenario}: {label}: {outcomes}")
            else:
                verdict = "(reference)"
            rows.append([f"{delay} ms", scenario, label, ", ".join(sorted(set(outcomes))),
                         f"{statistics.median(seconds):.2f}", f"{required}: {verdict}"])
            log(rows[-1])
    return rows


def suite_fault(args):
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    delay = args.delays[0]
    filters = ["--filter=readahead", "--filter=cache"]
    # (label, fault, whether the copy must succeed with identical data)
    scenarios = [("origin down 2 s at 1/2", f"outage_at={size // 2}&outage_ms=2000", True),
                 ("image changes at 1/2", f"change_at={size // 2}", False)]
    origin = Origin(image, delay)
    missed = []
    try:
        servers = [("jnbd readahead+cache+http", ["jnbd", "-r", *filters, "http", f"url={origin.url}"]),
                   ("nbdkit readahead+cache+curl", ["nbdkit", "-r", *filters, "curl", f"url={origin.url}"])]
        rows = fault_rows(args, origin, servers, scenarios, sha, delay, [], missed)
        rows += fault_rows(args, origin, v2v_servers(origin.url), scenarios[:1], sha, delay,
                           ["--requests=64", "--flush"], missed)
    finally:
        origin.stop()
    print(fmt_table(f"fault: {args.size_mib} MiB image, nbdcopy, {args.runs} runs (median seconds)",
                    ["delay", "fault", "server", "outcome", "seconds", "required for jnbd"], rows))
    if missed:
        raise SystemExit("fault: jnbd did not behave as required:\n" + "\n".join(missed))


def suite_v2v(args):
    """virt-v2v's line, copied as virt-v2v copies (nbdcopy --requests=64 --flush), jnbd vs nbdkit."""
    size = args.size_mib * MiB
    image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(image)
    rows, missed = [], []
    for delay in args.delays:
        origin = Origin(image, delay)
        try:
            medians = {}
            for label, argv in v2v_servers(origin.url):
                outcomes, seconds = copy_outcomes(args, origin, None, label, argv, sha, ["--requests=64", "--flush"])
                medians[label] = statistics.median(seconds)
                if label.startswith("jnbd") and any(o != "identical" for o in outcomes):
                    missed.append(f"{delay} ms: {label}: {outcomes}")
                rows.append([f"{delay} ms", label, ", ".join(sorted(set(outcomes))), f"{medians[label]:.2f}",
                             f"{size / MiB / medians[label]:.0f}"])
                log(rows[-1])
            jnbd_s, nbdkit_s = medians.values()
            rows.append([f"{delay} ms", "speed-up (nbdkit s / jnbd s)", "", f"{nbdkit_s / jnbd_s:.2f}x", ""])
        finally:
            origin.stop()
    print(fmt_table(f"v2v: {args.size_mib} MiB image over http, virt-v2v's filters (retry, cacheextents, cow), "
                    f"nbdcopy --requests=64 --flush, median of {args.runs}",
                    ["delay", "server", "outcome", "seconds", "MiB/s"], rows))
    if missed:
        raise SystemExit("v2v: jnbd did not copy identically:\n" + "\n".join(missed))


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


IDLE_SECONDS = 5  # after start, so that the JVM's periodic trim of its C heap (every 2 s) has run


def memory_footprint(args):
    """Issue 11's memory rows, nbdkit beside jnbd: the memory plugin holding 1 GiB of written data
    (peak RSS, and jnbd's longest GC pause from -Xlog:gc), idle RSS of memory 1G, and peak RSS
    during an nbdcopy of 1 GiB from the file plugin. The median of --runs, servers alternated."""
    size = 1024 * MiB
    image = make_image("memory-1G.img", size)
    warm(image)
    sha = sha256(image)
    figures = {(row, name): [] for row in ("written", "pause", "start pause", "idle", "copy") for name in ("nbdkit", "jnbd")}
    for _ in range(args.runs):
        for name in ("nbdkit", "jnbd"):
            gc_log = WORK / "footprint-gc.log"
            gc_log.unlink(missing_ok=True)
            # JDK_JAVA_OPTIONS adds to the launcher's JVM options where JAVA_OPTS would replace them.
            env = {"JDK_JAVA_OPTIONS": f"-Xlog:gc:file={gc_log}"} if name == "jnbd" else None
            started = time.monotonic()
            with Server(name, [name, "memory", "1G"], env) as server:
                time.sleep(IDLE_SECONDS)
                figures["idle", name].append(server.rss_mib())
                loaded_after = time.monotonic() - started
                timed(["nbdcopy", str(image), server.uri])
                copy = WORK / "footprint-readback.img"
                timed(["nbdcopy", server.uri, str(copy)])
                figures["written", name].append(server.peak_rss_mib())
            same = sha256(copy) == sha
            copy.unlink()
            if not same:
                raise SystemExit(f"footprint: {name} memory plugin returned different data")
            if name == "jnbd":
                figures["pause", name].append(longest_gc_pause_ms(gc_log, loaded_after))
                figures["start pause", name].append(longest_gc_pause_ms(gc_log, 0, loaded_after))
            with Server(name, [name, "-r", "file", f"file={image}"]) as server:
                timed(["nbdcopy", server.uri, "null:"])
                figures["copy", name].append(server.peak_rss_mib())

    def cell(row, name, unit):
        values = figures[row, name]
        return f"{statistics.median(values):.1f} {unit}" if values else "-"
    rows = [["memory 1G, 1 GiB written and read back: peak RSS", cell("written", "jnbd", "MiB"),
             cell("written", "nbdkit", "MiB"), "<= 1126 MiB"],
            ["  longest GC pause while writing and reading", cell("pause", "jnbd", "ms"), "-", "<= 10 ms"],
            ["  longest GC pause before, at start-up", cell("start pause", "jnbd", "ms"), "-", ""],
            [f"memory 1G, idle {IDLE_SECONDS} s after start: RSS", cell("idle", "jnbd", "MiB"),
             cell("idle", "nbdkit", "MiB"), "<= 40 MiB"],
            ["nbdcopy of 1 GiB from the file plugin: peak RSS", cell("copy", "jnbd", "MiB"),
             cell("copy", "nbdkit", "MiB"), "<= 64 MiB"]]
    print(fmt_table(f"memory footprint (issue 11), median of {args.runs} runs",
                    ["what", "jnbd", "nbdkit", "target"], rows))


def longest_gc_pause_ms(gc_log, after_seconds, before_seconds=float("inf")):
    """The longest stop-the-world pause in a -Xlog:gc file (lines like "[12.345s]...Pause Young ...
    1.234ms") between two moments of JVM uptime. The bench asks apart for the pauses while the
    data is written and read and for start-up's: those are not the data's, and on a loaded machine
    the scheduler stretches them (seen: 90 ms at load 21 on 2 cores)."""
    pauses = [float(m.group(2)) for m in re.finditer(r"^\[([0-9.]+)s\].*Pause.* ([0-9.]+)ms$", gc_log.read_text(), re.M)
              if after_seconds <= float(m.group(1)) < before_seconds]
    return max(pauses, default=0.0)


# --- soak ------------------------------------------------------------------------------------
#
# 64 well-behaved connections keep 16 requests each in flight for a fixed time, every reply
# checked, while 16 hostile clients queue 32 MiB READs and never read a reply. The server's RSS,
# threads and fds are sampled every second, and the replies per connection, so that a stall of
# the whole server or of one client shows in a 10 s window.
#
# A gap in a client's replies is not always the server's: the generator itself can stall (this
# machine class reclaims page cache hard, and a process that faults its code back in can sit
# for tens of seconds; seen 2026-11-29: a 46 s stall of one generator process while the server
# had written every reply and held nothing). So each connection also measures how long it waited
# *on the server*: with requests outstanding and nothing to read on its socket. Across a stall of
# the generator, the wait counts only if the socket is still empty afterwards; when data is
# there, the server answered at some unknown moment during the stall and the wait counted ends at
# the last look before it. The "every client served" verdict uses that measure; the reply gaps,
# which include the generator's stalls, are shown beside it, with the generator's longest stall.

SOAK_CLIENTS = 64             # well-behaved connections
SOAK_DEPTH = 16               # requests each keeps in flight
SOAK_WORKERS = 4              # generator processes, SOAK_CLIENTS / SOAK_WORKERS connections each
SOAK_HOSTILE = 16             # clients that never read their replies
SOAK_HOSTILE_READS = 256      # 32 MiB READs each hostile client queues (8 GiB asked of each)
SOAK_HOSTILE_LENGTH = 32 * MiB
SOAK_WINDOW = 10              # seconds per rate window
SOAK_DRAIN = 30               # seconds the generator waits for its last replies
SOAK_SETTLE = 10              # seconds the server is watched after all clients have left
SOAK_MEMORY_SIZE = 1024 * MiB
SOAK_PREFILL = 256 * MiB      # memory target: a pattern written here first, zeroes after it
SOAK_SLOT = 256 * 1024        # memory target: each connection's private write slot, at the end
SOAK_WRITE_SHARE = 0.1        # memory target: share of requests that write a slot (as many read it back)
SOAK_CACHE = 64 * MiB         # http target: cache-max-size, for jnbd and nbdkit alike
SOAK_HTTP_DELAY = 20          # http target: origin delay per response, ms
# jnbd's RSS bound: the data the server holds (memory target: prefill + write slots; http
# target: the cache) plus this fixed overhead for the JVM, the well-behaved clients' own requests
# in flight (64 x 16 x up to 256K = 256 MiB) and 80 connections. Measured without the hostile
# clients (20 s, 2026-11): memory 502 MiB (230 over its data), http 522 MiB (458 over its cache).
SOAK_OVERHEAD_MIB = 512
# The errnos an NBD server can send; libnbd fails the requests of a lost connection with others
# (ENOTCONN), which the soak counts apart, as lost rather than as error replies.
NBD_ERRNOS = {errno.EPERM, errno.EIO, errno.ENOMEM, errno.EINVAL, errno.ENOSPC, errno.EOVERFLOW,
              errno.ENOTSUP, errno.ESHUTDOWN}


def page_count(length):
    return length // 4096


class PatternDisk:
    """What the memory target holds: a pattern over the first `filled` bytes, zeroes after it.

    The pattern repeats a random block whose length is no multiple of any block size, so data
    read from the wrong offset does not match by accident.
    """
    PERIOD = MiB + 4093

    def __init__(self, size, filled):
        self.size = size
        self.filled = filled
        block = random.Random(SOAK_PREFILL).randbytes(self.PERIOD)
        self.twice = block + block

    def pattern(self, offset, length):
        start = offset % self.PERIOD
        return self.twice[start:start + length]

    def expected(self, offset, length):
        head = max(0, min(length, self.filled - offset))
        return self.pattern(offset, head) + bytes(length - head)

    def fill(self, uri):
        h = nbd.NBD()
        h.connect_uri(uri)
        for offset in range(0, self.filled, MiB):
            h.pwrite(self.pattern(offset, MiB), offset)
        h.flush()
        h.shutdown()


class FileDisk:
    """What the http target serves: the origin's image file."""

    def __init__(self, path):
        self.file = open(path, "rb")
        self.map = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = len(self.map)

    def expected(self, offset, length):
        return self.map[offset:offset + length]

    def close(self):
        self.map.close()
        self.file.close()


class MemoryTarget:
    label = "memory"
    data_held = SOAK_PREFILL + SOAK_CLIENTS * SOAK_SLOT

    def __init__(self):
        self.disk = PatternDisk(SOAK_MEMORY_SIZE, SOAK_PREFILL)
        self.size = SOAK_MEMORY_SIZE
        self.write_base = self.size - SOAK_CLIENTS * SOAK_SLOT  # reads stay below the slots
        self.describe = (f"memory 1G, {SOAK_PREFILL // MiB} MiB pattern written first, random reads below "
                         f"{self.write_base // MiB} MiB, {SOAK_WRITE_SHARE:.0%} writes + "
                         f"{SOAK_WRITE_SHARE:.0%} read-backs of a 256K slot per connection")

    def servers(self):
        return [("nbdkit", ["nbdkit", "memory", "1G"]), ("jnbd", ["jnbd", "memory", "1G"])]

    def prepare(self, uri):
        self.disk.fill(uri)

    def close(self):
        pass


class HttpTarget:
    label = "http"
    data_held = SOAK_CACHE

    def __init__(self):
        image = make_image("http-256M.img", 256 * MiB, holes=True)
        self.disk = FileDisk(image)
        self.size = self.disk.size
        self.write_base = None
        self.origin = Origin(image, SOAK_HTTP_DELAY)
        self.describe = (f"-r readahead+cache (cache-max-size={SOAK_CACHE // MiB}M) over a 256 MiB image, "
                         f"origin delay {SOAK_HTTP_DELAY} ms, random reads")

    def servers(self):
        filters = ["--filter=readahead", "--filter=cache"]
        tail = [f"url={self.origin.url}", f"cache-max-size={SOAK_CACHE // MiB}M"]
        return [("nbdkit", ["nbdkit", "-r", *filters, "curl", *tail]),
                ("jnbd", ["jnbd", "-r", *filters, "http", *tail])]

    def prepare(self, _uri):
        self.origin.reset()

    def close(self):
        self.origin.stop()
        self.disk.close()


class SoakStats:
    """Counters shared with the generator processes, one slot per connection (or worker)."""

    def __init__(self, ctx):
        def counters(kind="q", n=SOAK_CLIENTS):
            return ctx.Array(kind, n, lock=False)
        self.replies, self.nbytes, self.errors, self.mismatches = (counters() for _ in range(4))
        self.lost, self.unanswered, self.dead = counters(), counters(), counters()
        self.server_wait = counters("d")  # longest wait on the server per connection, s
        self.cpu = counters("d", SOAK_WORKERS)
        self.generator_stall = counters("d", SOAK_WORKERS)  # longest loop iteration per worker, s
        self.heartbeat = counters("d", SOAK_WORKERS)  # when each worker last finished a round
        # Set by a worker once it has recorded its connections' unanswered requests: a worker
        # killed after the drain leaves them unknown, not zero.
        self.finished = counters("i", SOAK_WORKERS)
        self.connected = ctx.Semaphore(0)
        self.go, self.stop = ctx.Event(), ctx.Event()


class SoakConnection:
    """One well-behaved connection: keeps SOAK_DEPTH requests in flight and checks every reply."""

    def __init__(self, index, uri, target, stats):
        self.index = index
        self.target = target
        self.stats = stats
        self.rng = random.Random(index)
        self.h = nbd.NBD()
        self.h.connect_uri(uri)
        self.fd = self.h.aio_get_fd()
        self.read_limit = target.write_base or target.size
        self.slot_offset = None if target.write_base is None else target.write_base + index * SOAK_SLOT
        self.slot = bytearray(SOAK_SLOT)  # what the slot holds (the memory disk starts as zeroes)
        self.slot_busy = False
        self.free_buffers = {}      # request length -> buffers not in use
        self.waiting_since = None   # first look that found requests outstanding and nothing to read
        self.last_look = None
        self.answered = False       # a reply (or error) came since the last look

    def look(self, now):
        """Notes whether the connection is waiting on the server, and how long it has."""
        if self.h.aio_is_dead() or self.h.aio_is_closed():
            return  # its socket is closed; soak_poll counts it dead
        unread = struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        waiting = self.h.aio_in_flight() > 0 and not unread
        if self.waiting_since is not None and (self.answered or not waiting):
            # An answer came since the last look, or is there to read: the wait ended between
            # that look and this one; count it up to the last look.
            self.record_wait(self.last_look - self.waiting_since)
            self.waiting_since = None
        if waiting:
            if self.waiting_since is None:
                self.waiting_since = now
            self.record_wait(now - self.waiting_since)
        self.answered = False
        self.last_look = now

    def record_wait(self, seconds):
        self.stats.server_wait[self.index] = max(self.stats.server_wait[self.index], seconds)

    def fill(self):
        while self.h.aio_in_flight() < SOAK_DEPTH:
            self.issue()

    def issue(self):
        r = self.rng.random()
        if self.slot_offset is not None and not self.slot_busy and r < 2 * SOAK_WRITE_SHARE:
            self.slot_busy = True
            if r < SOAK_WRITE_SHARE:
                self.write_slot()
            else:
                self.read(self.slot_offset, SOAK_SLOT, lambda: self.slot, slot=True)
        else:
            length = self.rng.randint(1, 64) * 4096
            offset = self.rng.randrange(page_count(self.read_limit - length) + 1) * 4096
            self.read(offset, length, lambda: self.target.disk.expected(offset, length))

    def buffer(self, length):
        """A buffer of `length` bytes for one request, reused: a fresh one per request leaked
        (python3-libnbd 1.14 keeps what aio_pread/aio_pwrite were given), 5-11 GiB per generator
        process in a 40 s memory soak, and the kernel's reclaim then stalled everything."""
        free = self.free_buffers.setdefault(length, [])
        if free:
            return free.pop()
        data = bytearray(length)
        return data, nbd.Buffer.from_buffer(data)

    def read(self, offset, length, expected, slot=False):
        buf, wrapped = self.buffer(length)

        def done(err):  # libnbd reads into `buf` until the reply is in
            ok = self.account(length, err.value)
            if ok and buf != expected():
                self.stats.mismatches[self.index] += 1
            if slot:
                self.slot_busy = False
            self.free_buffers[length].append((buf, wrapped))
            return 1
        self.h.aio_pread(wrapped, offset, completion=done)

    def write_slot(self):
        length = self.rng.randint(1, page_count(SOAK_SLOT)) * 4096
        at = self.rng.randrange(page_count(SOAK_SLOT - length) + 1) * 4096
        data, wrapped = self.buffer(length)
        data[:] = self.target.disk.pattern(self.rng.randrange(PatternDisk.PERIOD), length)

        def done(err):  # libnbd sends from `data` until the write completes
            if self.account(length, err.value):
                self.slot[at:at + length] = data
                self.slot_busy = False
            # after a failed write the slot's content is unknown: it stays busy, never read again
            self.free_buffers[length].append((data, wrapped))
            return 1
        self.h.aio_pwrite(wrapped, self.slot_offset + at, completion=done)

    def account(self, length, error):
        self.answered = True
        if error:
            failed = self.stats.errors if error in NBD_ERRNOS else self.stats.lost
            failed[self.index] += 1
            return False
        self.stats.replies[self.index] += 1
        self.stats.nbytes[self.index] += length
        return True


def soak_poll(connections, timeout):
    """Waits up to `timeout` s for socket events and lets libnbd handle them; drops dead connections."""
    by_fd, poller = {}, select.poll()
    for c in connections:
        direction = c.h.aio_get_direction()
        events = (select.POLLIN if direction & nbd.AIO_DIRECTION_READ else 0) | \
                 (select.POLLOUT if direction & nbd.AIO_DIRECTION_WRITE else 0)
        if events:
            by_fd[c.fd] = c
            poller.register(c.fd, events)
    for fd, events in poller.poll(timeout * 1000):
        c = by_fd[fd]
        try:
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                c.h.aio_notify_read()
            if events & select.POLLOUT:
                c.h.aio_notify_write()
        except nbd.Error:
            c.stats.dead[c.index] = 1
    return [c for c in connections if not c.stats.dead[c.index]]


def lock_in_memory():
    """Keeps this process's pages resident. Under memory pressure the kernel reclaimed the
    generator's code and libraries, and a process sat 40-185 s in one libnbd call, faulting them
    back in, while every reply waited in its socket. Needs root (or CAP_IPC_LOCK); without it the
    generator runs as before."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mlockall(1 | 2)  # MCL_CURRENT | MCL_FUTURE


def soak_worker(worker, uri, target, stats):
    """A generator process: its share of the connections, until stats.stop, then the last replies."""
    lock_in_memory()
    connections = [SoakConnection(i, uri, target, stats)
                   for i in range(worker, SOAK_CLIENTS, SOAK_WORKERS)]
    for _ in connections:
        stats.connected.release()
    stats.go.wait()
    last = stats.heartbeat[worker] = time.monotonic()
    while not stats.stop.is_set() and connections:
        for c in connections:
            try:
                c.fill()
            except nbd.Error:
                stats.dead[c.index] = 1
        connections = soak_poll(connections, 0.1)
        now = time.monotonic()
        stats.generator_stall[worker] = max(stats.generator_stall[worker], now - last)
        last = stats.heartbeat[worker] = now
        for c in connections:
            c.look(now)
    deadline = time.monotonic() + SOAK_DRAIN
    while time.monotonic() < deadline and any(c.h.aio_in_flight() for c in connections):
        connections = soak_poll(connections, 0.1)
        stats.heartbeat[worker] = time.monotonic()
    for c in connections:
        stats.unanswered[c.index] = c.h.aio_in_flight()
        if not stats.unanswered[c.index]:
            try:
                c.h.shutdown()  # NBD_CMD_DISC; the others just close when the process exits
            except nbd.Error:
                pass
    stats.cpu[worker] = time.process_time()
    stats.finished[worker] = 1


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection during the handshake")
        data += chunk
    return data


def hostile_client(path, size, rng):
    """Connects as a fixed-newstyle client, queues SOAK_HOSTILE_READS 32 MiB READs and never reads
    a reply. Returns the socket (to be kept open) and how many requests the kernel took."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    nbdmagic, ihaveopt, flags = struct.unpack(">QQH", recv_exactly(sock, 18))
    if (nbdmagic, ihaveopt) != (0x4E42444D41474943, 0x49484156454F5054):
        raise SystemExit("hostile client: not a fixed-newstyle NBD server")
    client_flags = flags & 3  # FIXED_NEWSTYLE | NO_ZEROES, as far as the server offers them
    sock.sendall(struct.pack(">I", client_flags) + struct.pack(">QII", ihaveopt, 1, 0))  # EXPORT_NAME ""
    recv_exactly(sock, 10 if client_flags & 2 else 134)  # size, transmission flags (and zeroes)
    slots = (size - SOAK_HOSTILE_LENGTH) // SOAK_HOSTILE_LENGTH + 1
    requests = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 0, cookie,
                                    rng.randrange(slots) * SOAK_HOSTILE_LENGTH, SOAK_HOSTILE_LENGTH)
                        for cookie in range(SOAK_HOSTILE_READS))
    sock.setblocking(False)
    try:
        sent = sock.send(requests)
    except BlockingIOError:
        sent = 0
    return sock, sent // 28


def soak_sample(server, stats, started):
    return {"t": time.monotonic() - started, "rss": server.rss_mib(), "threads": server.threads(),
            "fds": server.open_fds(), "replies": list(stats.replies)}


def peak(values):
    """The largest of some samples, ignoring those taken when the server was gone (NaN)."""
    return max((v for v in values if v == v), default=float("nan"))


def guard(server, rss, rss_limit):
    """Why the server can no longer be measured, or None: it exited, or it was killed because its
    RSS passed the safety limit (the machine is shared; the server would take it all)."""
    if server.proc.poll() is not None:
        return f"exited ({server.proc.returncode})"
    if rss > rss_limit:
        server.proc.kill()
        server.proc.wait()
        return f"killed: RSS {rss:.0f} > {rss_limit} MiB"
    return None


def soak_load(server, target, stats, seconds, rss_limit):
    """Runs the generator for `seconds`, sampling the server every second. Returns the samples,
    the load's duration and why it ended early (or None)."""
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=soak_worker, args=(w, server.uri, target, stats), daemon=True)
               for w in range(SOAK_WORKERS)]
    for w in workers:
        w.start()
    for _ in range(SOAK_CLIENTS):
        if not stats.connected.acquire(timeout=60):
            raise SystemExit(f"{server.label}: the generator could not connect")
    started = time.monotonic()
    stats.go.set()
    samples, stopped = [soak_sample(server, stats, started)], None
    while samples[-1]["t"] < seconds and not stopped:
        time.sleep(max(0.0, len(samples) - (time.monotonic() - started)))
        samples.append(soak_sample(server, stats, started))
        stopped = guard(server, samples[-1]["rss"], rss_limit)
        if stopped:
            stopped += f" after {samples[-1]['t']:.0f} s"
    stats.stop.set()
    elapsed = time.monotonic() - started
    for i, w in enumerate(workers):
        w.join(SOAK_DRAIN + 30)
        if w.is_alive():
            w.kill()
            # Killed in the middle of a round: that round's stall counts too (CLOCK_MONOTONIC is
            # the same clock in every process).
            stats.generator_stall[i] = max(stats.generator_stall[i], time.monotonic() - stats.heartbeat[i])
    return samples, elapsed, stopped


def aftermath(server, hostile, rss_limit):
    """Closes the hostile clients (the well-behaved ones are gone already) and watches the server
    for SOAK_SETTLE s: its peak and final RSS, threads and fds, and whether it is still running."""
    for sock, _ in hostile:
        sock.close()
    if server.proc.poll() is not None:
        return {"peak RSS after clients left MiB": float("nan"), "RSS at the end MiB": float("nan"),
                "threads": None, "fds": None, "died": "stopped during load"}
    rss, state = [], None
    for _ in range(SOAK_SETTLE):
        time.sleep(1)
        rss.append(server.rss_mib())
        state = guard(server, rss[-1], rss_limit)
        if state:
            break
    return {"peak RSS after clients left MiB": peak(rss), "RSS at the end MiB": rss[-1],
            "threads": server.threads(), "fds": server.open_fds(), "died": state}


def windows(samples):
    """Per SOAK_WINDOW s window: replies of each connection (one window when the run is shorter),
    and the window's length."""
    step = min(SOAK_WINDOW, len(samples) - 1)
    edges = range(0, len(samples) - step, step) if step > 0 else []
    return [[b - a for a, b in zip(samples[i]["replies"], samples[i + step]["replies"])]
            for i in edges], step


def longest_gap(samples):
    """The longest time (s, at 1 s resolution) any connection went without a reply."""
    longest = 0
    for c in range(SOAK_CLIENTS):
        run = 0
        for a, b in zip(samples, samples[1:]):
            run = run + 1 if b["replies"][c] == a["replies"][c] else 0
            longest = max(longest, run)
    return longest


def soak_run(name, argv, target, seconds, rss_limit):
    """One server under the soak workload; returns its measurements."""
    with Server(name, argv) as server:
        target.prepare(server.uri)
        before = (server.threads(), server.open_fds())
        cpu_before = server.cpu_seconds()
        rng = random.Random(99)
        hostile = [hostile_client(server.sock, target.size, rng) for _ in range(SOAK_HOSTILE)]
        stats = SoakStats(multiprocessing.get_context("fork"))
        samples, elapsed, stopped = soak_load(server, target, stats, seconds, rss_limit)
        server_cpu = server.cpu_seconds() - cpu_before
        peak_under_load = peak([server.peak_rss_mib()] + [s["rss"] for s in samples])
        end_rss = samples[-1]["rss"]
        after = aftermath(server, hostile, rss_limit)
    per_window, step = windows(samples)
    totals = [sum(w) for w in per_window]
    return {
        "replies/s": sum(stats.replies) / elapsed,
        "MiB/s": sum(stats.nbytes) / MiB / elapsed,
        "min replies/s in a window": min(totals, default=0) / max(step, 1),
        "slowest client: fewest replies in a window": min((min(w) for w in per_window), default=0),
        "longest gap without a reply, s": longest_gap(samples),
        "longest wait on the server, s": max(stats.server_wait),
        "generator's longest stall, s": max(stats.generator_stall),
        "clients dead": sum(stats.dead),
        "error replies": sum(stats.errors),
        "requests lost with their connection": sum(stats.lost),
        "verification failures": sum(stats.mismatches),
        "unanswered after the drain": sum(stats.unanswered),
        "generator processes that did not finish": SOAK_WORKERS - sum(stats.finished),
        "peak RSS under load MiB": peak_under_load,
        "RSS at end of load MiB": end_rss,
        "peak RSS after clients left MiB": after["peak RSS after clients left MiB"],
        "RSS at the end MiB": after["RSS at the end MiB"],
        "threads before/peak/end": (before[0], max(s["threads"] or 0 for s in samples), after["threads"]),
        "fds before/peak/end": (before[1], max(s["fds"] or 0 for s in samples), after["fds"]),
        "server CPU, cores": server_cpu / elapsed,
        "generator CPU, cores": sum(stats.cpu) / elapsed,
        "hostile READs queued": sum(n for _, n in hostile),
        "seconds of load": elapsed,
        "stopped early": stopped,
        "died after clients left": after["died"],
    }


def soak_worst(results):
    """Several rounds of one server in one: the worst value of each measurement."""
    def worst(key, values):
        if isinstance(values[0], tuple):
            return tuple(max((x for x in v if x is not None), default=None) for v in zip(*values))
        if all(v is None or isinstance(v, str) for v in values):  # what went wrong, if anything did
            return next((v for v in values if v), None)
        lower_is_worse = key.startswith(("replies/s", "MiB/s", "min ", "slowest", "seconds"))
        return min(values) if lower_is_worse else max(values)
    return {key: worst(key, [r[key] for r in results]) for key in results[0]}


def soak_cell(value):
    if value is None:
        return "no"
    if isinstance(value, tuple):
        return "/".join("-" if v is None else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.2f}" if value < 10 else f"{value:.0f}"
    return str(value)


def peak_rss(result):
    """Peak RSS over the server's whole run, clients leaving included."""
    return peak([result["peak RSS under load MiB"], result["peak RSS after clients left MiB"]])


def soak_verdicts(label, bound_mib, results):
    """The PASS/FAIL lines: each bound for jnbd, nbdkit's result alongside for reference."""
    min_window, slowest = "min replies/s in a window", "slowest client: fewest replies in a window"
    waited, stall = "longest wait on the server, s", "generator's longest stall, s"
    checks = [
        (f"RSS <= {bound_mib:.0f} MiB", lambda r: peak_rss(r) <= bound_mib,
         lambda r: f"peak {peak_rss(r):.0f} MiB"),
        ("no error replies", lambda r: r["error replies"] == 0 and r["verification failures"] == 0,
         lambda r: f"{r['error replies']} error replies, {r['verification failures']} with wrong data"),
        # A stalled server leaves every connection waiting on it; a stalled generator does not
        # count (see the top of this section), but its figures are shown.
        ("no stall", lambda r: r[waited] < SOAK_WINDOW and not r["stopped early"],
         lambda r: f"longest wait on the server {r[waited]:.1f} s, min window {r[min_window]:.0f} replies/s, "
                   f"generator's longest stall {r[stall]:.1f} s"
                   + (f", {r['stopped early']}" if r["stopped early"] else "")),
        ("every client served", lambda r: r[waited] < SOAK_WINDOW and r["clients dead"] == 0
         and r["unanswered after the drain"] == 0 and r["generator processes that did not finish"] == 0,
         lambda r: f"longest wait on the server {r[waited]:.1f} s, {r['clients dead']} dead, "
                   f"{r['requests lost with their connection']} requests lost, "
                   f"{r['unanswered after the drain']} unanswered {SOAK_DRAIN} s after the load"
                   f" ({r['generator processes that did not finish']} generator processes killed before counting); "
                   f"slowest client {r[slowest]} replies in its worst window, longest reply gap "
                   f"{r['longest gap without a reply, s']} s, generator's longest stall "
                   f"{r[stall]:.1f} s"),
        ("survives the clients leaving", lambda r: not r["died after clients left"],
         lambda r: r["died after clients left"] or "still running"),
    ]
    lines = []
    for name, passes, detail in checks:
        verdict = "PASS" if passes(results["jnbd"]) else "FAIL"
        reference = "pass" if passes(results["nbdkit"]) else "fail"
        lines.append(f"{verdict} {label}: {name}: jnbd {detail(results['jnbd'])} "
                     f"(nbdkit {reference}: {detail(results['nbdkit'])})")
    return lines


def soak_target(target, args):
    bound = target.data_held / MiB + SOAK_OVERHEAD_MIB
    log(f"soak {target.label}: {target.describe}; jnbd RSS bound {bound:.0f} MiB")
    runs = {"nbdkit": [], "jnbd": []}
    for _ in range(args.runs):
        for name, argv in target.servers():
            log(f"soak {target.label}: {name} for {args.soak_seconds} s")
            runs[name].append(soak_run(name, argv, target, args.soak_seconds, args.soak_rss_limit))
            log(f"soak {target.label}: {name}:", {k: soak_cell(v) for k, v in runs[name][-1].items()})
    results = {name: soak_worst(r) for name, r in runs.items()}
    rows = []
    for key, j in results["jnbd"].items():
        n = results["nbdkit"][key]
        ratio = f"{j / n:.2f}" if isinstance(j, float) and isinstance(n, float) and n else ""  # not for counts
        rows.append([key, soak_cell(j), soak_cell(n), ratio])
    title = (f"soak {target.label}: {target.describe}\n"
             f"{SOAK_CLIENTS} connections x {SOAK_DEPTH} in flight ({SOAK_WORKERS} generator processes), "
             f"{SOAK_HOSTILE} clients queueing {SOAK_HOSTILE_READS} x 32 MiB READs and never reading, "
             f"{args.soak_seconds} s, worst of {args.runs} run(s); windows of {SOAK_WINDOW} s "
             f"(one window when a run is shorter)\n"
             f"jnbd RSS bound: {target.data_held // MiB} MiB data held + {SOAK_OVERHEAD_MIB} MiB = {bound:.0f} MiB")
    print(fmt_table(title, ["measurement", "jnbd", "nbdkit", "jnbd/nbdkit"], rows))
    print("\n".join(soak_verdicts(target.label, bound, results)))
    print()


def suite_soak(args):
    for make in (MemoryTarget, HttpTarget):
        target = make()
        try:
            soak_target(target, args)
        finally:
            target.close()


def make_certificates(directory):
    """A CA and a server certificate for localhost in nbdkit's file layout, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "server-key.pem").exists():
        return directory
    def run(*argv):
        subprocess.run(["openssl", *argv], check=True, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca-cert.pem",
        "-subj", "/CN=jnbd bench CA", "-days", "30")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
        "-out", "server-cert.pem", "-days", "30", "-extfile", "san.ext")
    return directory


def suite_tls(args):
    """nbdcopy from the memory plugin over TLS with certificates: jnbd vs nbdkit, alternated."""
    size = args.size_mib * MiB
    image = make_image(f"core-{args.size_mib}M.img", size)
    warm(image)
    pki = make_certificates(WORK / "pki")
    tls_argv = ["--tls=require", f"--tls-certificates={pki}"]
    readers = [("nbdcopy --no-extents", ["--no-extents"]),
               ("nbdcopy --no-extents -R1 -C1", ["--no-extents", "--requests=1", "--connections=1"])]
    rows = []
    for reader_label, options in readers:
        results = {"jnbd": [], "nbdkit": []}
        cpu = {"jnbd": [], "nbdkit": []}
        for _ in range(args.runs):
            for name in ("nbdkit", "jnbd"):
                with Server(name, [name] + tls_argv + ["memory", f"size={size}"]) as server:
                    uri = f"nbds+unix:///?socket={server.sock}&tls-certificates={pki}"
                    timed(["nbdcopy", str(image), uri])
                    before = server.cpu_seconds()
                    seconds = timed(["nbdcopy", *options, uri, "null:"])
                    results[name].append(size / MiB / seconds)
                    cpu[name].append(server.cpu_seconds() - before)
        j, n = statistics.median(results["jnbd"]), statistics.median(results["nbdkit"])
        spread = lambda xs: f"{min(xs):.0f}-{max(xs):.0f}"
        rows.append([reader_label, f"{j:.0f}", spread(results["jnbd"]), f"{n:.0f}", spread(results["nbdkit"]),
                     f"{j / n:.2f}", f"{statistics.median(cpu['jnbd']):.1f}", f"{statistics.median(cpu['nbdkit']):.1f}"])
        log(rows[-1])
    print(fmt_table(f"tls: {args.size_mib} MiB from memory over TLS (x509), median of {args.runs} runs "
                    "(MiB/s; range; server CPU s)",
                    ["reader", "jnbd", "range", "nbdkit", "range", "ratio", "jnbd CPU", "nbdkit CPU"], rows))


# --- footprint -------------------------------------------------------------------------------


def installed_jnbd():
    """bin/jnbd of the release tarball unpacked into bench/work/install, rebuilt when stale."""
    jar = ROOT / "target" / "jnbd.jar"
    tarballs = sorted((ROOT / "target").glob("jnbd-*-linux-x64.tar.gz"))
    if not tarballs or tarballs[-1].stat().st_mtime < jar.stat().st_mtime:
        log("building the release tarball (-Pdist)")
        subprocess.run([str(ROOT / "mvnw"), "-B", "-q", "-DskipTests", "-Pdist", "package"],
                       cwd=ROOT, check=True, stdout=sys.stderr)
        tarballs = sorted((ROOT / "target").glob("jnbd-*-linux-x64.tar.gz"))
    prefix = WORK / "install"
    stamp = prefix / ".from"
    if not stamp.exists() or stamp.read_text() != f"{tarballs[-1]} {tarballs[-1].stat().st_mtime}":
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        subprocess.run(["tar", "-xzf", str(tarballs[-1]), "-C", str(prefix)], check=True)
        stamp.write_text(f"{tarballs[-1]} {tarballs[-1].stat().st_mtime}")
    return str(next(prefix.glob("jnbd-*")) / "bin" / "jnbd")


def no_java_home():
    env = dict(os.environ, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""))
    env.pop("JAVA_HOME", None)
    return env


def wall_and_cpu(argv):
    """Runs argv to completion; returns its wall seconds and the CPU seconds it and its children used."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=no_java_home())
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}")
    return elapsed, usage.ru_utime + usage.ru_stime


def started_server(program, settle):
    """Starts PROGRAM -f -P PIDFILE memory 1G; returns the seconds until the pidfile exists and,
    after SETTLE seconds idle (a JIT may still be compiling), the server's CPU seconds and RSS."""
    work = Path(tempfile.mkdtemp(prefix="jnbd-footprint-"))
    pidfile = work / "pid"
    start = time.monotonic()
    proc = subprocess.Popen([program, "-f", "-U", str(work / "sock"), "-P", str(pidfile), "memory", "1G"],
                            stdout=subprocess.DEVNULL, env=no_java_home())
    try:
        while not pidfile.exists():
            if proc.poll() is not None or time.monotonic() - start > 60:
                raise SystemExit(f"{program}: server did not start")
            time.sleep(0.001)
        ready = time.monotonic() - start
        time.sleep(settle)
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:")) / 1024
        return {"pidfile": ready, "cpu": cpu, "rss": rss}
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


def footprint_run(program):
    """One of each measurement the rows read, with a fresh process each."""
    return {"version": wall_and_cpu([program, "--version"]),
            "run": wall_and_cpu([program, "--run", "true", "memory", "1G"]),
            "server": started_server(program, settle=1.0)}


# Each row: label, unit, format, target (jnbd's, from issue 11), and what to read from one
# footprint_run(). More rows: add a line here (and a measurement to footprint_run if new).
FOOTPRINT_ROWS = [
    ("--version wall", "s", "{:.3f}", "<= 0.15", lambda m: m["version"][0]),
    ("--version CPU", "s", "{:.3f}", "", lambda m: m["version"][1]),
    ("--run true memory 1G wall", "s", "{:.3f}", "<= 0.35", lambda m: m["run"][0]),
    ("--run true memory 1G CPU", "s", "{:.3f}", "", lambda m: m["run"][1]),
    ("-f -P: until the pidfile exists", "s", "{:.3f}", "<= 0.3", lambda m: m["server"]["pidfile"]),
    ("CPU to start (1 s after the pidfile)", "s", "{:.2f}", "<= 0.3", lambda m: m["server"]["cpu"]),
    ("idle RSS, memory 1G (1 s after)", "MiB", "{:.1f}", "<= 40", lambda m: m["server"]["rss"]),
]


def suite_footprint(args):
    programs = [("nbdkit", shutil.which("nbdkit")), ("jnbd checkout", JNBD), ("jnbd installed", installed_jnbd())]
    for _, program in programs:  # first runs fill the page cache; they are not counted
        wall_and_cpu([program, "--version"])
    values = {(label, name): [] for label, *_ in FOOTPRINT_ROWS for name, _ in programs}
    for run in range(args.runs):
        for name, program in programs:
            measured = footprint_run(program)
            for label, _, _, _, read in FOOTPRINT_ROWS:
                values[(label, name)].append(read(measured))
        log(f"footprint run {run + 1}/{args.runs} done")
    rows = []
    for label, unit, fmt, target, _ in FOOTPRINT_ROWS:
        med = {name: statistics.median(values[(label, name)]) for name, _ in programs}
        row = [f"{label} ({unit})", fmt.format(med["nbdkit"])]
        for name in ("jnbd checkout", "jnbd installed"):
            spread = values[(label, name)]
            row += [f"{fmt.format(med[name])} ({fmt.format(min(spread))}-{fmt.format(max(spread))})",
                    f"{med[name] / med['nbdkit']:.0f}x" if med["nbdkit"] > 0 else "-"]
        row.append(target)
        rows.append(row)
    print(fmt_table(f"footprint: median of {args.runs} runs (min-max), JAVA_HOME unset; load average "
                    f"{os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPUs",
                    ["what", "nbdkit", "jnbd checkout", "ratio", "jnbd installed", "ratio", "target"], rows))
    print()
    memory_footprint(args)
    print()
    throughput_footprint(args)


def steady_copy_cpu(label, argv):
    """Server CPU seconds during an nbdcopy to null: from a server that has already served one
    (start-up and warm-up excluded, as the issue's steady-state rows ask)."""
    with Server(label, argv) as server:
        timed(["nbdcopy", server.uri, "null:"])
        before = server.cpu_seconds()
        timed(["nbdcopy", server.uri, "null:"])
        return server.cpu_seconds() - before


def throughput_footprint(args):
    """Issue 11's CPU and speed rows, each beside nbdkit: steady-state server CPU for 2 GiB from the
    file plugin and for the http image from a local nginx (with and without readahead+cache); a
    fresh server's copy over HTTPS and plain HTTP (the jit suite's launcher rows); the serial
    reader through a slow link (the link suite, at most 3 runs: nbdkit takes ~1 min per run)."""
    file_image = make_image("footprint-2G.img", 2048 * MiB)
    warm(file_image)
    size = args.size_mib * MiB
    http_image = make_image(f"http-{args.size_mib}M.img", size, holes=True)
    sha = sha256(http_image)
    warm(http_image)
    nginx = Nginx(http_image)
    try:
        url = nginx.urls["http"]
        filters = ["--filter=readahead", "--filter=cache"]
        cases = [("2 GiB from the file plugin", "<= 1.2x",
                  [("nbdkit file", ["nbdkit", "-r", "file", f"file={file_image}"]),
                   ("jnbd file", ["jnbd", "-r", "file", f"file={file_image}"])]),
                 (f"{args.size_mib} MiB over http, local nginx", "<= 2x",
                  [("nbdkit curl", ["nbdkit", "-r", "curl", f"url={url}"]),
                   ("jnbd http", ["jnbd", "-r", "http", f"url={url}"]),
                   # A cache smaller than the image, so that the second copy reads over http again.
                   ("nbdkit readahead+cache+curl, cache-max-size=64M", ["nbdkit", "-r", *filters, "curl", f"url={url}",
                                                                        "cache-max-size=64M"]),
                   ("jnbd readahead+cache+http, cache-max-size=64M", ["jnbd", "-r", *filters, "http", f"url={url}",
                                                                      "cache-max-size=64M"])])]
        rows = []
        for case, target, servers in cases:
            cpu = {label: [] for label, _ in servers}
            for _ in range(args.runs):
                for label, argv in servers:
                    cpu[label].append(steady_copy_cpu(label, argv))
            reference = None
            for label, _ in servers:
                median = statistics.median(cpu[label])
                if label.startswith("nbdkit"):
                    reference = median
                rows.append([case, label, f"{median:.2f} ({min(cpu[label]):.2f}-{max(cpu[label]):.2f})",
                             "-" if label.startswith("nbdkit") else f"{median / reference:.2f}x", target])
                log(rows[-1])
        print(fmt_table(f"server CPU s during a second nbdcopy to null: (steady state), median of {args.runs} runs",
                        ["copy", "server", "CPU s", "vs the nbdkit row above", "target"], rows))
        print()
        print(cpu_rows(f"a fresh server per copy: {args.size_mib} MiB from a local nginx, nbdcopy defaults, median "
                       f"of {args.runs} runs (the issue: jnbd at least as fast as nbdkit curl)",
                       nginx_cases(nginx, [("jnbd http", None)]), args.runs, sha, size))
    finally:
        nginx.stop()
    print()
    suite_link(argparse.Namespace(**dict(vars(args), runs=min(args.runs, 3))))


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
                        choices=["core", "http", "readahead", "memory", "fault", "soak", "fuzz", "v2v", "tls", "footprint", "jit", "link"])
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per cell; the median is shown (default 3; footprint: 7; soak: 1, the worst is shown)")
    parser.add_argument("--size-mib", type=int, default=None,
                        help="image size (default: 1024 for core, 256 for http, readahead and fault)")
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 20],
                        help="origin delays in ms (http and readahead; fault uses the first;"
                             " the issue asks for 0 20 and 20 50)")
    parser.add_argument("--random-reads", type=int, default=2000)
    parser.add_argument("--jit", nargs="+", default=["launcher", "tiered"], choices=list(JIT_VARIANTS),
                        help="jit: the JAVA_OPTS variants of jnbd to compare (default: launcher tiered)")
    parser.add_argument("--jit-edit", action="append", default=[], metavar="LABEL=OPTIONS",
                        help="jit: compare instead, over http and https, the launcher's own options for that command "
                             "line with OPTIONS (words) applied: -XX:F=V, -XX:+F, -XX:-F replace or add, !-XX:F drops")
    parser.add_argument("--later-copies", type=int, default=2,
                        help="jit, with --jit-edit: copies from each server after its first (default 2)")
    parser.add_argument("--soak-seconds", type=int, default=120, help="soak: load time per server and target")
    parser.add_argument("--soak-rss-limit", type=int, default=10240,
                        help="soak: MiB of server RSS at which the server is killed to protect the machine "
                             "(nbdkit memory levels off near 8.5 GiB under the hostile clients)")
    parser.add_argument("--fuzz-cases", type=int, default=50000, help="random sessions for the fuzz suite")
    parser.add_argument("--fuzz-seed", type=int, default=None, help="replay a fuzz run (default: a new seed)")
    args = parser.parse_args()
    # A copy is 256 MiB to 1 GiB of RAM under /dev/shm: it must go however the run ends (a failed
    # check, ^C, a kill by timeout), not only when its row finishes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        run_suites(args)
    finally:
        OUT.unlink(missing_ok=True)


def run_suites(args):
    for suite in args.suite:
        suite_args = argparse.Namespace(**vars(args))
        if suite_args.size_mib is None:
            suite_args.size_mib = 1024 if suite in ("core", "tls") else 256
        if suite_args.runs is None:
            suite_args.runs = {"soak": 1, "footprint": 7}.get(suite, 3)
        {"core": suite_core, "http": suite_http, "readahead": suite_readahead,
         "memory": memory_check, "fault": suite_fault,
         "soak": suite_soak, "fuzz": suite_fuzz,
         "v2v": suite_v2v, "tls": suite_tls, "footprint": suite_footprint, "jit": suite_jit, "link": suite_link}[suite](suite_args)
        print()

if __name__ == "__main__":
    main()
