#!/usr/bin/env python3
"""lbproxy vs HAProxy, same backends, same certificates, same run: ``python bench/run.py``.

What it does, in order:
1. Installs what it needs if missing (wrk, haproxy, nginx via apt-get when run as root) and builds the
   ``noresume.so`` shim (``SSL_set_session`` as a no-op) so wrk can be forced to do full handshakes.
2. Starts two nginx backends (one worker each, a fixed small response), a real ``lbproxy control``
   with the two instances registered, and for each key type (ECDSA P-256, RSA-2048) one certificate
   imported into ACM and attached to a load balancer; then ``lbproxy lb`` (decrypting its key through
   its grant, as in production) and HAProxy 2.x (``nbthread 1``) with the same certificate and key
   (``--peers``: also HAProxy with as many threads as lbproxy has workers, ``haproxy-mt``, and nginx).
3. For each scenario it alternates the two proxies (A B B A ...) for ``--rounds`` rounds and takes medians:
   - ``https``    keep-alive HTTPS (wrk, ``--connections`` connections, 1 thread)
   - ``http``     keep-alive HTTP
   - ``full``     a full TLS handshake per request (``Connection: close`` + the no-resume shim)
   - ``resumed``  a resumed TLS handshake per request (``Connection: close``; wrk resumes by itself)
   - ``close``    a new plain TCP connection per request (HTTP, ``Connection: close``)
   It reports req/s, p50/p99 latency, errors, and requests per proxy-CPU-second (utime+stime of the
   proxy and all its children from /proc), and the lbproxy/HAProxy ratios; and where the machine's CPU
   went during each run (the proxy, wrk, the backends, idle), which says whether a proxy was short of
   work or short of CPU.
4. Writes a new ``bench/RESULTS-<date>-<time>.md`` (or ``--out``) with the command line and the environment.

Its Python dependencies (trustme, boto3): ``pip install -e '.[bench]'``.

Only loopback addresses are used; every wrk run is bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"


# ----------------------------------------------------------------------------- tools


def ensure_tools() -> None:
    missing = [t for t in ("wrk", "haproxy", "nginx", "gcc") if shutil.which(t) is None]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pkgs = {"wrk": "wrk", "haproxy": "haproxy", "nginx": "nginx", "gcc": "gcc"}
        print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *[pkgs[m] for m in missing]],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    still = [t for t in missing if shutil.which(t) is None]
    if still:
        sys.exit(f"bench: missing tools: {', '.join(still)} (install them, e.g. apt-get install {' '.join(still)})")


def build_shim(workdir: Path) -> Path:
    out = workdir / "noresume.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(HERE / "noresume.c"), "-ldl"], check=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_owner_check(port: int) -> None:
    """A stale proxy from an earlier run can silently answer on the benchmark port: refuse to start."""
    with socket.socket() as s:
        if s.connect_ex((LOOPBACK, port)) == 0:
            sys.exit(f"bench: something already listens on {LOOPBACK}:{port}; stop it first")


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout}s")


# ----------------------------------------------------------------------------- certificates


@dataclass
class CertSet:
    kind: str  # "ec" | "rsa"
    cert_pem: bytes
    chain_pem: bytes
    key_pem: bytes
    ca_pem: bytes


def make_certs(kind: str) -> CertSet:
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.ECDSA if kind == "ec" else trustme.KeyType.RSA)
    leaf = ca.issue_cert(
        "localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA if kind == "ec" else trustme.KeyType.RSA
    )
    chain = leaf.cert_chain_pems
    return CertSet(
        kind,
        chain[0].bytes(),
        # Every proxy serves the same chain: the leaf and, as an intermediate would be, the CA (a client parses
        # each certificate it is sent, so a proxy sending fewer would do less per handshake).
        b"".join(c.bytes() for c in chain[1:]) or ca.cert_pem.bytes(),
        leaf.private_key_pem.bytes(),
        ca.cert_pem.bytes(),
    )


# ----------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """utime + stime of the process and all its descendants (alive ones)."""
        total = 0
        for pid in descendants(self.popen.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                continue
        return total / CLK_TCK

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def rss_kib(pids: list[int]) -> int:
    """Resident memory (VmRSS) of ``pids`` together, in KiB (/proc; a process gone counts 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def pin(pid: int, cpus: set[int]) -> None:
    """Pin a process and all its descendants (threads included) to ``cpus``."""
    for p in descendants(pid):
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}/task").exists() else []:
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)


def descendants(pid: int) -> list[int]:
    out = [pid]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}/task").exists() else []:
            with contextlib.suppress(OSError):
                out.extend(int(c) for c in (task / "children").read_text().split())
    return list(dict.fromkeys(out))


def start_nginx(d: Path, name: str, port: int, worker_connections: int, http_body: str) -> Proc:
    """One nginx (1 worker, in the foreground) with ``http_body`` inside its ``http {}`` block."""
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
{http_body}
}}
""")
    p = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return Proc(name, p)


def start_nginx_backend(workdir: Path, port: int) -> Proc:
    d = workdir / f"nginx-{port}"
    d.mkdir()
    body = f"""    keepalive_timeout 75s;
    server {{
        listen {LOOPBACK}:{port} reuseport backlog=4096;
        location / {{ default_type text/plain; return 200 "hello from backend {port}\\n"; }}
    }}"""
    return start_nginx(d, f"nginx:{port}", port, 4096, body)


def start_nginx_proxy(workdir: Path, certs: CertSet, http_port: int, https_port: int, backends: list[int]) -> Proc:
    """nginx as the other peer: 1 worker, TLS 1.2 + 1.3 (its default is 1.2 only), keep-alive upstreams."""
    d = workdir / f"nginx-proxy-{certs.kind}"
    d.mkdir(exist_ok=True)
    (d / "cert.pem").write_bytes(certs.cert_pem + certs.chain_pem)
    (d / "key.pem").write_bytes(certs.key_pem)
    (d / "key.pem").chmod(0o600)
    servers = "\n".join(f"        server {LOOPBACK}:{p};" for p in backends)
    proxy = """
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Port $server_port;"""
    body = f"""    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    upstream be {{
{servers}
        keepalive 64;
    }}
    server {{
        listen {LOOPBACK}:{http_port};
        location / {{{proxy}
        }}
    }}
    server {{
        listen {LOOPBACK}:{https_port} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{{proxy}
        }}
    }}"""
    return start_nginx(d, "nginx-proxy", https_port, 8192, body)


def haproxy_config(
    workdir: Path, certs: CertSet, http_port: int, https_port: int, backends: list[int], threads: int = 1
) -> Path:
    """HAProxy's configuration (``nbthread`` ``threads``, the same certificate and key) and its PEM, written to
    ``workdir``."""
    pem = workdir / f"haproxy-{certs.kind}.pem"
    pem.write_bytes(certs.cert_pem + certs.chain_pem + certs.key_pem)
    pem.chmod(0o600)
    servers = "\n".join(f"    server b{i} {LOOPBACK}:{p}" for i, p in enumerate(backends))
    cfg = workdir / f"haproxy-{certs.kind}-{threads}.cfg"
    cfg.write_text(f"""
global
    nbthread {threads}
    maxconn 8000
    tune.ssl.default-dh-param 2048
    stats socket {workdir}/haproxy-{certs.kind}-{threads}.sock mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    option http-keep-alive
    http-reuse always
frontend fe_http
    bind {LOOPBACK}:{http_port}
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port {http_port}
    default_backend be
frontend fe_https
    bind {LOOPBACK}:{https_port} ssl crt {pem} alpn http/1.1
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Port {https_port}
    default_backend be
backend be
    balance roundrobin
{servers}
""")
    return cfg


def start_haproxy(
    workdir: Path, certs: CertSet, http_port: int, https_port: int, backends: list[int], threads: int = 1
) -> Proc:
    cfg = haproxy_config(workdir, certs, http_port, https_port, backends, threads)
    p = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(https_port)
    return Proc(f"haproxy nbthread {threads}", p)


# ----------------------------------------------------------------------------- lbproxy


@dataclass
class LbproxyStack:
    control: Proc
    url: str
    data_dir: Path
    credentials: Path


def start_control(workdir: Path) -> LbproxyStack:
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "lbproxy-data"
    port = free_port()
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lbproxy",
            "--log-level",
            "WARNING",
            "control",
            "--listen",
            f"{LOOPBACK}:{port}",
            "--data-dir",
            str(data),
            "--validation-delay",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "control.log").open("wb"),
    )
    wait_port(port)
    return LbproxyStack(Proc("lbproxy-control", p), f"http://{LOOPBACK}:{port}", data, data / "credentials")


def admin_client(stack: LbproxyStack, service: str) -> Any:
    import boto3

    session = boto3.Session(profile_name="admin")
    return session.client(service, endpoint_url=stack.url, region_name="us-east-1")


def setup_load_balancer(stack: LbproxyStack, name: str, certs: CertSet, backends: list[int]) -> None:
    """Everything through the public API: instances, load balancer, imported certificate, attach.

    (Imported, so HAProxy can be given the very same certificate and key; attaching an imported ACM
    certificate is lbproxy's documented extension ``POST /lbproxy/v1/load-balancers/{lb}/tls-certificates``.)"""
    from lbproxy.proxy.controllink import ControlClient, Signer, load_credentials

    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(stack.credentials)
    creds, region = load_credentials("admin")
    link = ControlClient(stack.url, Signer(creds, region))
    names = []
    for i, port in enumerate(backends):
        names.append(f"bench-{i}")
        link.call_json("PUT", f"/lbproxy/v1/instances/bench-{i}", {"address": f"{LOOPBACK}:{port}"})
    ls = admin_client(stack, "lightsail")
    ls.create_load_balancer(loadBalancerName=name, instancePort=80, healthCheckPath="/")
    ls.attach_instances_to_load_balancer(loadBalancerName=name, instanceNames=names)
    arn = admin_client(stack, "acm").import_certificate(
        Certificate=certs.cert_pem, PrivateKey=certs.key_pem, CertificateChain=certs.chain_pem or certs.ca_pem
    )["CertificateArn"]
    link.call_json(
        "POST",
        f"/lbproxy/v1/load-balancers/{name}/tls-certificates",
        {"certificateName": f"{name}-cert", "acmCertificateArn": arn},
    )
    ls.attach_load_balancer_tls_certificate(loadBalancerName=name, certificateName=f"{name}-cert")


def start_lb(
    stack: LbproxyStack,
    name: str,
    http_port: int,
    https_port: int,
    workers: int,
    admin_port: int,
    extra: tuple[str, ...] = (),
    tree: Path | None = None,
) -> Proc:
    """``lbproxy lb`` for ``name``, ready: the lbproxy of the tree this script is in, or of ``tree`` (a
    checkout of another commit: ``--baseline``), whatever the caller's working directory and PYTHONPATH."""
    tree = tree or HERE.parent
    env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(stack.credentials), "AWS_PROFILE": name}
    env["PYTHONPATH"] = str(tree)  # (``python -m`` puts the working directory first on sys.path: both are the tree)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lbproxy",
            "--log-level",
            "WARNING",
            "lb",
            "--name",
            name,
            "--control",
            stack.url,
            "--http-listen",
            f"{LOOPBACK}:{http_port}",
            "--https-listen",
            f"{LOOPBACK}:{https_port}",
            "--workers",
            str(workers),
            "--admin-listen",
            f"{LOOPBACK}:{admin_port}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=(stack.data_dir / f"lb-{workers}.log").open("wb"),
        env=env,
        cwd=tree,
    )
    # Serving only once it printed its ready line (the key decrypted, the workers up), not when bound.
    assert p.stdout is not None
    ready = p.stdout.readline()
    if not ready:
        sys.exit(f"bench: lbproxy lb exited at start; see {stack.data_dir}/lb-{workers}.log")
    info = json.loads(ready)
    if info.get("key") != "loaded":
        sys.exit(f"bench: lbproxy lb started without its key: {info}")
    return Proc(f"lbproxy-lb:{name}", p)


# ----------------------------------------------------------------------------- measuring

#: lbproxy supervisor pid -> its admin (Prometheus /metrics) port, to read the handshake counters.
LB_ADMIN_PORTS: dict[int, int] = {}
#: lbproxy contender -> which hot path it ran (``/health``'s ``hotPath``: compiled, or the Python source and why).
HOT_PATHS: dict[str, str] = {}


def lb_hot_path(admin_port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{admin_port}/health", timeout=5) as r:
            return str(json.load(r).get("hotPath", "Python source (a commit from before the compiled hot path)"))
    except (OSError, ValueError) as exc:
        return f"unknown ({exc})"


def lb_handshakes(proc: Proc) -> tuple[float, float] | None:
    """(full, resumed) TLS handshakes so far, from lbproxy's /metrics (None for other proxies)."""
    port = LB_ADMIN_PORTS.get(proc.popen.pid)
    if port is None:
        return None
    text = urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("lbproxy_TLSFullHandshakeCount", "lbproxy_TLSResumedHandshakeCount")):
            name = line.split("{", 1)[0].split(" ", 1)[0].removesuffix("_total")
            values[name] = float(line.rsplit(" ", 1)[1])
    return values.get("lbproxy_TLSFullHandshakeCount", 0.0), values.get("lbproxy_TLSResumedHandshakeCount", 0.0)


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_s: float
    #: Share of this run's TLS handshakes that were resumptions (lbproxy's counters; None: not known).
    resumed_share: float | None = None
    #: Where the machine's CPU went during the run, in cores (CPU-seconds per second of the run): the proxy,
    #: the load generator (wrk), the backends, and nobody (idle, from /proc/stat).
    proxy_cores: float = 0.0
    client_cores: float = 0.0
    backend_cores: float = 0.0
    idle_cores: float = 0.0

    @property
    def per_cpu(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s > 0 else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def idle_seconds() -> float:
    """CPU-seconds every core of the machine spent idle (or waiting for I/O) since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / CLK_TCK


def children_cpu_seconds() -> float:
    """utime + stime of this process's reaped children (a finished wrk run is one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str,
    proc: Proc,
    duration: float,
    connections: int,
    close: bool,
    shim: Path | None,
    cpu: int | None = None,
    backends: list[Proc] | None = None,
) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "5s"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    if close:
        cmd += ["-H", "Connection: close"]
    env = dict(os.environ)
    if shim is not None:
        env["LD_PRELOAD"] = str(shim)
    hs0 = lb_handshakes(proc) if close else None
    backends = backends or []
    cpu0, idle0, client0 = proc.cpu_seconds(), idle_seconds(), children_cpu_seconds()
    backend0 = sum(b.cpu_seconds() for b in backends)
    started = time.monotonic()
    done = subprocess.run([*cmd, url], capture_output=True, text=True, env=env, timeout=duration + 30)
    wall = time.monotonic() - started
    proxy_cpu = proc.cpu_seconds() - cpu0
    split = {
        "proxy_cores": proxy_cpu / wall,
        "client_cores": (children_cpu_seconds() - client0) / wall,
        "backend_cores": (sum(b.cpu_seconds() for b in backends) - backend0) / wall,
        "idle_cores": (idle_seconds() - idle0) / wall,
    }
    out = done.stdout
    if "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed against {url} ({proc.name}): {done.stdout}{done.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    # Anchored at the line start: a "+/- Stdev" column such as 73.50% must not pass for the percentile.
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    share = None
    if hs0 is not None:
        time.sleep(1.2)  # workers report their counters to the supervisor every second
    hs1 = lb_handshakes(proc) if hs0 is not None else None
    if hs0 is not None and hs1 is not None:
        full, resumed = hs1[0] - hs0[0], hs1[1] - hs0[1]
        share = resumed / (full + resumed) if full + resumed else None
    return Run(rps, p50, p99, errors, reqs, proxy_cpu, share, **split)


SCENARIOS = {
    # name: (scheme, Connection: close, no-resume shim)
    "https": ("https", False, False),
    "http": ("http", False, False),
    "full": ("https", True, True),
    "resumed": ("https", True, False),
    "close": ("http", True, False),
}


@dataclass
class Result:
    scenario: str
    key: str
    workers: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, who: str, attr: str) -> float:
        vals = [getattr(r, attr) for r in self.runs.get(who, [])]
        return statistics.median(vals) if vals else float("nan")

    def ratio(self, peer: str, attr: str, who: str = "lbproxy") -> str:
        """who/peer of the medians, and the range of the per-round ratios (each round pairs one run
        of each, back to back): the spread shows how much this shared machine moved during the run."""
        mid = self.median(who, attr) / self.median(peer, attr)
        rounds = zip(self.runs[who], self.runs[peer], strict=False)
        pairs = [getattr(a, attr) / getattr(b, attr) for a, b in rounds]
        spread = f" ({min(pairs):.2f}-{max(pairs):.2f})" if len(pairs) > 1 else ""
        return f"**{mid:.2f}x**{spread}"


PEER_TITLES = {"haproxy": "HAProxy", "haproxy-mt": "HAProxy (threads = workers)", "nginx": "nginx"}


def fmt_row(r: Result, peer: str, who: str = "lbproxy") -> str:
    lb_rps, pe_rps = r.median(who, "rps"), r.median(peer, "rps")
    lb_cpu, pe_cpu = r.median(who, "per_cpu"), r.median(peer, "per_cpu")
    errs = sum(x.errors for x in r.runs[who]), sum(x.errors for x in r.runs[peer])
    variant = who.removeprefix("lbproxy").strip(":") or "default"
    return (
        f"| {r.scenario} | {r.key} | {r.workers} | {variant} | {lb_rps:,.0f} | {pe_rps:,.0f} | "
        f"{r.ratio(peer, 'rps', who)} | {r.median(who, 'p50_ms'):.2f} / {r.median(who, 'p99_ms'):.2f} | "
        f"{r.median(peer, 'p50_ms'):.2f} / {r.median(peer, 'p99_ms'):.2f} | "
        f"{lb_cpu:,.0f} | {pe_cpu:,.0f} | {r.ratio(peer, 'per_cpu', who)} | {errs[0]} / {errs[1]} |"
    )


def header(peer: str) -> str:
    t = PEER_TITLES[peer]
    return (
        f"| scenario | key | lbproxy workers | lbproxy settings | lbproxy req/s | {t} req/s | "
        f"ratio (per-round range) | lbproxy p50/p99 ms | {t} p50/p99 ms | lbproxy req/CPU-s | {t} req/CPU-s | "
        "ratio/CPU (range) | "
        f"errors lbproxy/{t} |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )


def cpu_split_table(results: list[Result]) -> str:
    """Where the machine's CPU went while each contender was measured (medians over the rounds, in cores)."""
    rows = [
        f"| {r.scenario} | {r.key} | {r.workers} | {who} | {r.median(who, 'proxy_cores'):.2f} | "
        f"{r.median(who, 'client_cores'):.2f} | {r.median(who, 'backend_cores'):.2f} | "
        f"{r.median(who, 'idle_cores'):.2f} |"
        for r in results
        for who in r.runs
    ]
    return (
        "\n### Where the CPU went (cores, medians of the rounds)\n\n"
        f"The machine has {os.cpu_count()} cores. *proxy*: the proxy under test (lbproxy: the supervisor and "
        "its workers); *wrk*: the load generator; *backends*: the two nginx backends; *idle*: no process "
        "(/proc/stat). The rest is everything else on the machine (the control plane's sweeps, the kernel's "
        "softirq work accounted to no process).\n\n"
        "| scenario | key | lbproxy workers | proxy | proxy cores | wrk cores | backends cores | idle cores |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:SETTING=VALUE,SETTING=VALUE`` (``--variant``) -> (NAME, {SETTING: VALUE as TOML})."""
    name, _, rest = text.partition(":")
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise argparse.ArgumentTypeError(f"variant name {name!r}: lowercase letters, digits and '-' only")
    settings = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[a-z0-9_]+", key):
            raise argparse.ArgumentTypeError(f"variant {name}: {item!r} is not SETTING=VALUE")
        settings[key] = value
    return name, settings


def baseline_label(tree: Path) -> str:
    """``--baseline``'s tree as the report names it: its commit when it is a git checkout."""
    r = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return f"commit {r.stdout.strip()}" if r.returncode == 0 and r.stdout.strip() else str(tree)


def environment() -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1) if m else cpu
    versions = []
    for cmd in (["haproxy", "-v"], ["nginx", "-v"], ["wrk", "-v"], ["openssl", "version"]):
        with contextlib.suppress(OSError):
            r = subprocess.run(cmd, capture_output=True, text=True)
            versions.append((r.stdout or r.stderr).splitlines()[0].strip())
    return (
        f"- machine: {os.cpu_count()} cores, {cpu}, Linux {platform.release()}\n"
        f"- Python {platform.python_version()}; " + "; ".join(versions)
    )


@contextlib.contextmanager
def stack_for(
    workdir: Path,
    certs: CertSet,
    backends: list[int],
    workers: int,
    peers: list[str],
    variants: dict[str, dict[str, str]] | None = None,
    baseline: Path | None = None,
) -> Iterator[dict[str, tuple[Proc, int, int]]]:
    """Every contender, started and ready: ``lbproxy`` (default settings), one ``lbproxy:NAME`` per variant (its
    own load balancer on the same control plane, with the variant's settings), ``lbproxy:baseline`` (default
    settings, the code of the source tree ``baseline``) and the peers."""
    procs: list[Proc] = []
    try:
        ha_http, ha_https = free_port(), free_port()
        lb_http, lb_https = free_port(), free_port()
        ng_http, ng_https = free_port(), free_port()
        for port in (ha_http, ha_https, lb_http, lb_https, ng_http, ng_https):
            port_owner_check(port)
        stack = start_control(workdir / f"{certs.kind}-{workers}")
        procs.append(stack.control)
        out: dict[str, tuple[Proc, int, int]] = {}
        contenders = {"": {}, **(variants or {}), **({"baseline": {}} if baseline is not None else {})}
        for variant, settings in contenders.items():
            name = f"bench-{certs.kind}" + (f"-{variant}" if variant else "")
            setup_load_balancer(stack, name, certs, backends)
            admin = free_port()
            http_port, https_port = (lb_http, lb_https) if not variant else (free_port(), free_port())
            # TLS 1.3 as HAProxy and nginx offer it (Lightsail's policies, and lbproxy's default, stop at TLS 1.2):
            # the peers are compared on the same protocol version.
            config = workdir / f"lb-{name}-{workers}.toml"
            config.write_text("[settings]\noffer_tls13 = true\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
            tree = baseline if variant == "baseline" else None
            lb = start_lb(stack, name, http_port, https_port, workers, admin, ("--config", str(config)), tree)
            LB_ADMIN_PORTS[lb.popen.pid] = admin
            procs.append(lb)
            out["lbproxy" + (f":{variant}" if variant else "")] = (lb, http_port, https_port)
            HOT_PATHS[variant or "default"] = lb_hot_path(admin)
        if "haproxy" in peers:
            ha = start_haproxy(workdir, certs, ha_http, ha_https, backends)
            procs.append(ha)
            out["haproxy"] = (ha, ha_http, ha_https)
        if "haproxy-mt" in peers:  # as many threads as lbproxy has workers
            mt_http, mt_https = free_port(), free_port()
            mt = start_haproxy(workdir, certs, mt_http, mt_https, backends, threads=workers)
            procs.append(mt)
            out["haproxy-mt"] = (mt, mt_http, mt_https)
        if "nginx" in peers:
            ng = start_nginx_proxy(workdir, certs, ng_http, ng_https, backends)
            procs.append(ng)
            out["nginx"] = (ng, ng_http, ng_https)
        yield out
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds per scenario; medians (default 5)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument(
        "--scenarios",
        default="https,http,full,resumed,close",
        help="comma-separated: https (keep-alive HTTPS), http (keep-alive HTTP), full (a full TLS handshake per "
        "request), resumed (a resumed TLS handshake per request), close (a new plain TCP connection per request) "
        "(default: all five)",
    )
    ap.add_argument("--keys", default="ec,rsa", help="certificate key types, comma-separated: ec, rsa (default both)")
    ap.add_argument("--workers", default="1,2", help="lbproxy --workers values to measure (default 1,2)")
    ap.add_argument(
        "--peers",
        default="haproxy",
        help="proxies to compare against: haproxy (nbthread 1), haproxy-mt (nbthread = lbproxy's workers), nginx "
        "(default haproxy)",
    )
    ap.add_argument(
        "--pin",
        action="store_true",
        help="pin the proxy under test to CPU 1 (lbproxy with 2+ workers: every CPU) and wrk and the backends to "
        "CPU 0: less scheduler noise, and req/CPU-s without the load generator in the proxy's caches",
    )
    ap.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        metavar="NAME:SETTING=VALUE,...",
        help="also measure lbproxy with these [settings] (TOML values, e.g. listen_reuseport=true), as another "
        "contender in the same alternated rounds, reported as its own row; repeatable",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="TREE",
        help="also measure the lbproxy of another source tree (e.g. `git worktree add /tmp/before HEAD~1`), default "
        "settings, as the contender `baseline` in the same alternated rounds: a change's before and after in one run",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report file (default: a new bench/RESULTS-<date>-<time>.md; the committed RESULTS*.md stay as they are)",
    )
    args = ap.parse_args()
    if args.baseline is not None:
        if not (args.baseline / "lbproxy" / "__main__.py").is_file():
            ap.error(f"--baseline {args.baseline}: not an lbproxy source tree (no lbproxy/__main__.py)")
        if args.baseline.resolve() == HERE.parent.resolve():
            ap.error(f"--baseline {args.baseline}: that is this tree (the row `default`); give another checkout")
        if any(name == "baseline" for name, _ in args.variant):
            ap.error("--variant baseline: that name is --baseline's row")
        args.baseline = args.baseline.resolve()
    if args.out is None:
        args.out = HERE / f"RESULTS-{dt.datetime.now():%Y%m%d-%H%M%S}.md"
    try:
        import boto3  # noqa: F401
        import trustme  # noqa: F401
    except ImportError as exc:
        sys.exit(f"bench: {exc.name} is missing; install the benchmark's dependencies: pip install -e '.[bench]'")
    ensure_tools()
    sys.path.insert(0, str(HERE))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(
        prefix="lbproxy-bench-", dir="/dev/shm" if Path("/dev/shm").exists() else None
    ) as tmp:
        workdir = Path(tmp)
        shim = build_shim(workdir)
        backends = [free_port(), free_port()]
        nginxes = [start_nginx_backend(workdir, p) for p in backends]
        if args.pin:
            for n in nginxes:
                pin(n.popen.pid, {0})
        try:
            for key in args.keys.split(","):
                certs = make_certs(key)
                for workers in (int(w) for w in args.workers.split(",")):
                    peers = [x for x in args.peers.split(",") if x]
                    with stack_for(
                        workdir, certs, backends, workers, peers, dict(args.variant), args.baseline
                    ) as procs:
                        for scenario in args.scenarios.split(","):
                            scheme, close, no_resume = SCENARIOS[scenario]
                            res = Result(scenario, key, workers, {w: [] for w in procs})
                            everyone = list(procs)
                            for rnd in range(args.rounds):
                                order = everyone if rnd % 2 == 0 else everyone[::-1]  # A B / B A: alternate
                                for who in order:
                                    proc, http_port, https_port = procs[who]
                                    port = https_port if scheme == "https" else http_port
                                    if args.pin:  # every run: a new lbproxy generation may have started
                                        spread = who.startswith("lbproxy") and workers > 1
                                        pin(proc.popen.pid, set(range(os.cpu_count() or 2)) if spread else {1})
                                    run = run_wrk(
                                        f"{scheme}://{LOOPBACK}:{port}/",
                                        proc,
                                        args.duration,
                                        args.connections,
                                        close,
                                        shim if no_resume else None,
                                        0 if args.pin else None,
                                        nginxes,
                                    )
                                    res.runs[who].append(run)
                                    print(
                                        json.dumps(
                                            {
                                                "scenario": scenario,
                                                "key": key,
                                                "workers": workers,
                                                "who": who,
                                                "round": rnd,
                                                "rps": round(run.rps),
                                                "p99_ms": run.p99_ms,
                                                "errors": run.errors,
                                                "req_per_cpu_s": round(run.per_cpu),
                                                "resumed_share": run.resumed_share,
                                                "cores": [
                                                    round(run.proxy_cores, 2),
                                                    round(run.client_cores, 2),
                                                    round(run.backend_cores, 2),
                                                    round(run.idle_cores, 2),
                                                ],
                                            }
                                        ),
                                        flush=True,
                                    )
                            results.append(res)
                            for peer in peers:
                                for who in (w for w in procs if w.startswith("lbproxy")):
                                    print(fmt_row(res, peer, who), flush=True)
        finally:
            for n in nginxes:
                n.stop()
    cmd = "python bench/run.py " + " ".join(sys.argv[1:])
    peers = [x for x in args.peers.split(",") if x]
    checks = []
    for r in results:
        for who in (w for w in r.runs if w.startswith("lbproxy")):
            shares = [x.resumed_share for x in r.runs[who] if x.resumed_share is not None]
            if r.scenario in ("full", "resumed") and shares:
                checks.append(
                    f"{r.scenario}/{r.key}/{r.workers}w: "
                    f"{100 * statistics.median(shares):.0f} % of {who}'s handshakes resumed"
                )
    tables = "".join(
        f"\n### lbproxy vs {PEER_TITLES[peer]}\n\n{header(peer)}\n"
        + "\n".join(fmt_row(r, peer, who) for r in results for who in r.runs if who.startswith("lbproxy"))
        + "\n"
        for peer in peers
    )
    text = (
        "# Benchmarks: lbproxy vs " + " and ".join(PEER_TITLES[p] for p in peers) + "\n\n"
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{cmd.strip()}` "
        f"({args.rounds} alternated rounds of {args.duration:g} s, {args.connections} connections, medians"
        + (
            "; pinned: the proxy under test on CPU 1 (lbproxy with 2 workers on both), wrk and the backends on CPU 0"
            if args.pin
            else ""
        )
        + ").\n\n"
        f"{environment()}\n- HAProxy: nbthread 1 (`haproxy-mt`, when compared: nbthread = lbproxy's workers); "
        "nginx (when compared): 1 worker, TLS 1.2 + 1.3. Backends: two "
        "nginx (1 worker each). Load: wrk, 1 thread. lbproxy: `lbproxy lb` set up through the control plane "
        "(imported certificate attached, key decrypted through its grant), with `offer_tls13 = true` so that every "
        "proxy speaks TLS 1.3"
        + "".join(
            f"; variant `{name}` (row `{name}`): " + ", ".join(f"`{k} = {v}`" for k, v in settings.items())
            for name, settings in args.variant
        )
        + (f"; `baseline` (row `baseline`): the lbproxy of {baseline_label(args.baseline)}" if args.baseline else "")
        + ".\n"
        + "- lbproxy's hot path: "
        + "; ".join(f"`{who}`: {how}" for who, how in HOT_PATHS.items())
        + ".\n"
        "- Scenarios: `https`/`http` keep-alive; `full`: a full TLS handshake per request (`Connection: close` + "
        "bench/noresume.c); `resumed`: a resumed handshake per request (`Connection: close`; wrk resumes); "
        "`close`: a new plain TCP connection per request (HTTP, `Connection: close`).\n"
        "- Handshake check (lbproxy's TLSFullHandshakeCount / TLSResumedHandshakeCount during each run): "
        + ("; ".join(checks) or "not measured")
        + ".\n"
        f"{tables}{cpu_split_table(results)}"
    )
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
