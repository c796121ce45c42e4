#!/usr/bin/env python3
"""lbproxy's adversary suite: faults and hostile input against a running stack, with figures.

``python bench/adversary.py [--out FILE] [--workers N]`` starts the product the way ``docker compose``
does, as separate processes on 127.0.0.1: ``lbproxy control``, three ``lbproxy backend``s, the one-shot
``lbproxy setup`` (load balancer, instances, a certificate issued by the local CA, attached: a KMS grant),
and ``lbproxy lb --workers N``. Background traffic runs the whole time (keep-alive HTTPS, keep-alive HTTP,
and a new HTTPS connection per request), every response checked (status 200 and the backend's own answer).

Faults (each: what failed during it, how long until everything was back, what was lost):
- ``kill -9`` of a worker leader, a forked sibling, every worker, the supervisor (``lbproxy lb``; its runner
  restarts it, as compose's restart policy would), the control plane (idle, in the middle of a
  ``TlsPolicyName`` rotation, right after a ``RevokeGrant``), a backend (in-flight requests to it);
- a backend that aborts mid-response.

Hostile input (each: sent, then answered as it should be, the process still serving, no request smuggled
to a backend — a victim request right after gets its own response):
- data plane, over HTTP and HTTPS: request smuggling families (CL.TE, TE.CL, TE.TE, duplicate or invalid
  Content-Length, ``Connection: Content-Length``, obs-fold, bare LF, ``Transfer_Encoding``), upgrades other
  than WebSocket (``h2c``), ``#`` in the target, huge heads and bodies, a slowloris of idle half-heads;
- control plane: slow heads, big unauthenticated bodies, a target outside ``SignedHeaders``, a load
  balancer's role reading another load balancer.

Revocation latency: milliseconds from ``RevokeGrant`` returning to the first refused handshake, over several
rounds (a second ``lbproxy setup`` attaches the certificate again in between).

``--only revocation,faults,attacks`` picks sections; ``--workers``, ``--revocations``, ``--keep-logs DIR``.
Memory growth under the slow-client attacks is the resident memory (``/proc/PID/status`` VmRSS) of the
attacked processes before, at the peak, and after. Everything runs on 127.0.0.1 only; every loop is bounded
in count and time. Writes ``bench/ADVERSARY-<date>.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import rss_kib  # noqa: E402  (bench/run.py's /proc readings)

LOOPBACK = "127.0.0.1"
LB = "adv-lb"
PY = [sys.executable, "-m", "lbproxy"]
#: Seconds of calm before each fault; the load balancer's crash-loop backoff forgets a failure after less
#: (``restart_backoff_reset``), so each fault is met as a first failure, not as part of a crash loop.
CALM = 4.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    """Running (a zombie has exited: its memory is gone; only its parent has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


def descendants(pid: int) -> list[int]:
    out, i = [pid], 0
    while i < len(out):
        out += children(out[i])
        i += 1
    return out[1:]


# ----------------------------------------------------------------------------- the stack


@dataclasses.dataclass
class Stack:
    """The product as processes (the compose layout), each restartable."""

    tmp: Path
    workers: int
    control_port: int = dataclasses.field(default_factory=free_port)
    http_port: int = dataclasses.field(default_factory=free_port)
    https_port: int = dataclasses.field(default_factory=free_port)
    admin_port: int = dataclasses.field(default_factory=free_port)
    backend_ports: list[int] = dataclasses.field(default_factory=lambda: [free_port() for _ in range(3)])
    control: subprocess.Popen[bytes] | None = None
    lb: subprocess.Popen[bytes] | None = None
    backends: list[subprocess.Popen[bytes] | None] = dataclasses.field(default_factory=lambda: [None] * 3)

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.control_port}"

    def _log(self, name: str) -> Any:
        return open(self.tmp / f"{name}.log", "ab")

    def start_control(self) -> None:
        with self._log("control") as log:
            self.control = subprocess.Popen(
                [*PY, "control", "--data-dir", str(self.data_dir), "--listen", f"{LOOPBACK}:{self.control_port}",
                 "--validation-delay", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait(lambda: http_status(self.url + "/healthz") == 200, 30, "the control plane")

    def start_backend(self, i: int) -> None:
        with self._log(f"web-{i + 1}") as log:
            self.backends[i] = subprocess.Popen(
                [*PY, "backend", "--name", f"web-{i + 1}", "--listen", f"{LOOPBACK}:{self.backend_ports[i]}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait(lambda: http_status(f"http://{LOOPBACK}:{self.backend_ports[i]}/health") == 200, 20, "a backend")

    def setup(self) -> None:
        instances = [f"--instance=web-{i + 1}={LOOPBACK}:{p}" for i, p in enumerate(self.backend_ports)]
        with self._log("setup") as log:
            subprocess.run(
                [*PY, "setup", "--control", self.url, "--data-dir", str(self.data_dir), "--name", LB, *instances],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120,
            )  # fmt: skip

    def start_lb(self) -> None:
        config = self.tmp / "lb.toml"
        config.write_text(
            "[settings]\nheader_timeout = 3.0\ndrain_timeout = 3.0\nrotation_grace = 10.0\n"
            f"restart_backoff_max = {CALM - 1}\nrestart_backoff_reset = {CALM - 0.5}\n"
        )
        env = {
            **os.environ,
            "AWS_SHARED_CREDENTIALS_FILE": str(self.data_dir / "credentials"),
            "AWS_PROFILE": LB,
            "AWS_CONFIG_FILE": os.devnull,
        }
        with self._log("lb") as log:
            self.lb = subprocess.Popen(
                [*PY, "lb", "--name", LB, "--control", self.url, "--config", str(config),
                 "--http-listen", f"{LOOPBACK}:{self.http_port}", "--https-listen", f"{LOOPBACK}:{self.https_port}",
                 "--admin-listen", f"{LOOPBACK}:{self.admin_port}", "--workers", str(self.workers),
                 "--health-check-interval", "1", "--report-interval", "1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
            )  # fmt: skip
        wait(self.lb_ready, 40, "lbproxy lb")

    def lb_ready(self) -> bool:
        status = self.lb_status()
        if not status:  # (an lbproxy lb that does not report its workers on /health: ask HTTPS itself)
            return https_ok(self)
        return bool(status.get("keyHeld")) and status.get("degraded") is None

    def lb_status(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.admin_port}/health", timeout=2) as resp:
                return json.loads(resp.read())["workers"]
        except (OSError, ValueError, KeyError):
            return {}

    def worker_pids(self) -> tuple[list[int], list[int]]:
        """([leader], siblings) of the generation serving now (``lbproxy lb``'s admin ``/health``)."""
        pids = list(self.lb_status().get("pids") or [])
        return pids[:1], pids[1:]

    def ca_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.data_dir / "ca.pem"))
        return ctx

    def admin_client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        creds = configparser.ConfigParser()
        creds.read(self.data_dir / "credentials")
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=creds["admin"]["aws_access_key_id"],
            aws_secret_access_key=creds["admin"]["aws_secret_access_key"],
            config=Config(retries={"max_attempts": 1}),
        )  # fmt: skip

    def stop(self) -> None:
        for p in (self.lb, *self.backends, self.control):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError(f"{what}: not ready after {timeout}s")


async def until(predicate: Callable[[], Any], timeout: float) -> float | None:
    """Seconds until ``predicate()`` (run in a thread) is true, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await asyncio.to_thread(predicate):
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    return None


# ----------------------------------------------------------------------------- background traffic


@dataclasses.dataclass
class Traffic:
    """Bounded background clients; each result is (time, kind, ok)."""

    stack: Stack
    results: list[tuple[float, str, bool]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    stopping: bool = False

    def mark(self) -> int:
        return len(self.results)

    def since(self, mark: int, kinds: tuple[str, ...] = ("https", "http", "https-new")) -> tuple[int, int]:
        window = [r for r in self.results[mark:] if r[1] in kinds]
        return sum(1 for r in window if r[2]), sum(1 for r in window if not r[2])

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, close: bool) -> bool:
        """One request and its checked response; whether the connection may carry another."""
        writer.write(
            b"GET /traffic HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
            + (b"Connection: close\r\n" if close else b"")
            + b"\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"status {head[:12]!r}")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 5)
        if json.loads(body).get("path") != "/traffic":
            raise OSError("someone else's response")
        return b"\r\nconnection: close\r\n" not in head.lower()

    async def client(self, kind: str, deadline: float, max_requests: int = 200_000) -> None:
        tls = kind != "http"
        port = self.stack.https_port if tls else self.stack.http_port
        ctx = self.stack.ca_context() if tls else None
        reader = writer = None
        n = 0
        while not self.stopping and time.monotonic() < deadline and n < max_requests:
            n += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(LOOPBACK, port, ssl=ctx, server_hostname="localhost" if tls else None),
                        5,
                    )
                assert reader is not None and writer is not None
                reusable = await self._exchange(reader, writer, close=kind == "https-new")
                self.results.append((time.monotonic(), kind, True))
                if kind == "https-new" or not reusable:  # (a retiring generation says Connection: close)
                    writer.transport.abort()
                    writer = None
            except (OSError, EOFError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError, ValueError,
                    IndexError) as exc:  # fmt: skip
                self.results.append((time.monotonic(), kind, False))
                self.errors.append(f"{kind}, {'fresh' if writer is None else 'reused'} connection: "
                                   f"{type(exc).__name__}: {exc}"[:160])  # fmt: skip
                if writer is not None:
                    writer.transport.abort()
                writer = None
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)
        if writer is not None:
            writer.transport.abort()

    def start(self, deadline: float) -> list[asyncio.Task[None]]:
        kinds = ["https"] * 4 + ["http"] * 2 + ["https-new"]
        return [asyncio.get_running_loop().create_task(self.client(k, deadline)) for k in kinds]


# ----------------------------------------------------------------------------- faults


@dataclasses.dataclass
class FaultResult:
    name: str
    survived: bool
    ok: int
    failed: int
    #: Seconds from the fault to the first HTTPS success, and to everything restored (None: never).
    https_back: float | None
    recovery: float | None
    note: str
    http_failed: int = 0


async def run_faults(stack: Stack, traffic: Traffic) -> list[FaultResult]:
    out: list[FaultResult] = []

    def healthy() -> bool:
        s = stack.lb_status()
        return bool(s.get("keyHeld")) and s.get("degraded") is None and https_ok(stack)

    async def fault(name: str, action: Callable[[], Awaitable[str]], recovered: Callable[[], bool],
                    timeout: float = 40.0, https_stays: bool = True) -> None:  # fmt: skip
        await until(healthy, 30)
        await asyncio.sleep(CALM)  # (each fault on its own: the crash-loop backoff has forgotten the last one)
        mark = traffic.mark()
        errors = len(traffic.errors)
        start = time.monotonic()
        note = await action()
        https_back = await until(lambda: https_ok(stack), timeout) if https_stays else None  # (after the action)
        took = await until(recovered, timeout)
        if took is not None:
            took = time.monotonic() - start  # (from the start of the action)
        await asyncio.sleep(1.0)
        ok, failed = traffic.since(mark)
        _, http_failed = traffic.since(mark, ("http",))
        out.append(FaultResult(name, took is not None, ok, failed, https_back, took, note, http_failed))
        for line in sorted(set(traffic.errors[errors:]))[:6]:
            print(f"    failed: {line}", flush=True)
        print(f"  {name}: HTTPS back {https_back} s, restored {took} s, {failed} of {ok + failed} requests "
              f"failed ({http_failed} plain HTTP); {note}", flush=True)  # fmt: skip

    async def kill_workers(which: str) -> str:
        leaders, siblings = stack.worker_pids()
        victims = {"leader": leaders, "sibling": siblings[:1], "all": leaders + siblings}[which]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        return f"killed {len(victims)} process(es)"

    for which in ("leader", "sibling", "all") if stack.workers > 1 else ("leader",):
        await fault(f"kill -9 worker ({which})", lambda w=which: kill_workers(w), healthy)  # type: ignore[misc]

    async def kill_supervisor() -> str:
        assert stack.lb is not None
        held = descendants(stack.lb.pid)
        stack.lb.kill()
        stack.lb.wait()
        gone = await until(lambda: not any(alive(p) for p in held), 5)
        await asyncio.to_thread(stack.start_lb)  # its runner restarts it (compose: restart: unless-stopped)
        return f"its {len(held)} key-holding worker(s) exited {gone:.2f} s after it (no orphan); restarted"

    await fault("kill -9 supervisor (lbproxy lb)", kill_supervisor, healthy)

    async def kill_control(then: Callable[[], None] | None = None) -> str:
        assert stack.control is not None
        if then is not None:
            then()
        before = state_digest(stack)
        stack.control.kill()
        stack.control.wait()
        await asyncio.sleep(2.0)
        await asyncio.to_thread(stack.start_control)
        after = state_digest(stack)
        lost = sum(1 for k, v in before.items() if after.get(k) != v)
        return f"control plane down 2 s; state items lost: {lost} of {len(before)}"

    await fault("kill -9 control plane (idle)", kill_control, healthy)

    policies = iter(["TLS-FS-Res-1-2-2019-08", "TLS-2016-08"])

    def change_policy() -> None:
        stack.admin_client("lightsail").update_load_balancer_attribute(
            loadBalancerName=LB, attributeName="TlsPolicyName", attributeValue=next(policies)
        )
        time.sleep(0.1)

    for _ in range(2):
        await fault("kill -9 control plane mid-rotation (TlsPolicyName)", lambda: kill_control(change_policy),
                    healthy)  # fmt: skip

    revoked: dict[str, Any] = {}

    def revoke() -> None:
        kms = stack.admin_client("kms")
        grant = next(g for g in kms.list_grants(KeyId="alias/aws/acm")["Grants"] if g["Name"] == "IssuedThroughACM")
        kms.revoke_grant(KeyId=grant["KeyId"], GrantId=grant["GrantId"])
        revoked["at"] = time.monotonic()
        while time.monotonic() - revoked["at"] < 5 and https_ok(stack):  # (then the control plane dies)
            pass
        revoked["refused"] = time.monotonic()

    def refused() -> bool:
        return not https_ok(stack) and http_get_ok(stack)

    async def revoke_then_kill() -> str:
        note = await kill_control(revoke)
        return note + " (the HTTPS failures after the revoke are the point: handshakes refused)"

    await fault("kill -9 control plane right after RevokeGrant", revoke_then_kill, refused, https_stays=False)
    took_ms = (revoked["refused"] - revoked["at"]) * 1000
    out[-1].note += f"; HTTPS refused {took_ms:.0f} ms after RevokeGrant returned, still refused after the restart"
    # Repair (a second ``setup`` attaches the certificate again: a new grant), for what follows.
    await asyncio.to_thread(stack.setup)
    await until(healthy, 40)

    async def kill_backend() -> str:
        proc = stack.backends[0]
        assert proc is not None
        proc.kill()
        proc.wait()
        await asyncio.sleep(3.0)
        await asyncio.to_thread(stack.start_backend, 0)
        return "web-1 down 3 s, then back (health checks every 1 s)"

    await fault("kill -9 backend", kill_backend, healthy)
    return out


def https_ok(stack: Stack) -> bool:
    try:
        with (
            socket.create_connection((LOOPBACK, stack.https_port), timeout=2) as raw,
            stack.ca_context().wrap_socket(raw, server_hostname="localhost") as s,
        ):
            s.sendall(b"GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except (OSError, ssl.SSLError):
        return False


def http_get_ok(stack: Stack) -> bool:
    return http_status(f"http://{LOOPBACK}:{stack.http_port}/probe") == 200


def state_digest(stack: Stack) -> dict[str, Any]:
    """What the control plane has acknowledged, item by item (to count what a crash lost)."""
    kms, ls = stack.admin_client("kms"), stack.admin_client("lightsail")
    out: dict[str, Any] = {}
    for g in kms.list_grants(KeyId="alias/aws/acm")["Grants"]:
        out["grant:" + g["GrantId"]] = g["Name"]
    for k in kms.list_keys()["Keys"]:
        out["key:" + k["KeyId"]] = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
    for lb in ls.get_load_balancers()["loadBalancers"]:
        out["lb:" + lb["name"]] = sorted(i["instanceName"] for i in lb["instanceHealthSummary"])
    for c in ls.get_load_balancer_tls_certificates(loadBalancerName=LB)["tlsCertificates"]:
        out["cert:" + c["name"]] = c["status"]
    return out


# ----------------------------------------------------------------------------- hostile input


@dataclasses.dataclass
class AttackResult:
    plane: str
    name: str
    handled: bool
    detail: str


#: (name, raw request, what counts as handled: a status code class, "4xx" or "200").
DATA_PLANE_ATTACKS: list[tuple[str, bytes, str]] = [
    ("Connection: Content-Length (smuggled GET in the body)",
     b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 39\r\n\r\n"
     b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "4xx"),
    ("CL.TE", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
     "4xx"),
    ("TE.CL", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n"
     b"0\r\n\r\n", "4xx"),
    ("TE.TE (xchunked)", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", "4xx"),
    ("TE.TE (chunked, identity)", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
     "4xx"),
    ("duplicate Content-Length", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     "4xx"),
    ("Content-Length: +5", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", "4xx"),
    ("Transfer_Encoding", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n\r\n", "4xx"),
    ("obs-fold", b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", "4xx"),
    ("bare LF", b"GET /a HTTP/1.1\nHost: x\n\n", "4xx"),
    ("space before colon", b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n", "4xx"),
    ("two Hosts", b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "4xx"),
    ("no Host", b"GET /a HTTP/1.1\r\n\r\n", "4xx"),
    ("# in the target", b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", "4xx"),
    ("absolute-form for another host", b"GET http://evil/a HTTP/1.1\r\nHost: x\r\n\r\n", "4xx"),
    ("CONNECT", b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", "4xx"),
    ("Connection: Host", b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n", "4xx"),
    ("Connection: Transfer-Encoding",
     b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "4xx"),
    ("h2c upgrade (served as HTTP/1.1, not tunnelled)",
     b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
     b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", "200"),
    ("foo/1 upgrade (served as HTTP/1.1)",
     b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n", "200"),
    ("request line of 20 KiB", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "4xx"),
    ("head of 80 KiB", b"GET /a HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 80000 + b"\r\n\r\n", "4xx"),
    ("200 header fields", b"GET /a HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
     + b"\r\n", "4xx"),
    ("chunk size with 20 hex digits",
     b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\n", "4xx"),
    ("NUL in a header", b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "4xx"),
    ("HTTP/2 preface on the HTTP/1.1 port", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "4xx"),
]  # fmt: skip


async def send_raw(port: int, data: bytes, ctx: ssl.SSLContext | None, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection(
        LOOPBACK, port, ssl=ctx, server_hostname="localhost" if ctx else None
    )
    try:
        writer.write(data)
        out = b""
        with contextlib.suppress(TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            async with asyncio.timeout(timeout):
                while b"\r\n\r\n" not in out or not await _complete(out):
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    out += chunk
        return out
    finally:
        writer.transport.abort()


async def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"content-length:" in lower:
        return len(body) >= int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
    return False


async def victim_ok(stack: Stack, tls: bool) -> bool:
    """A request right after an attack gets its own response (nothing smuggled into the pool)."""
    ctx = stack.ca_context() if tls else None
    port = stack.https_port if tls else stack.http_port
    data = await send_raw(port, b"GET /victim HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n", ctx)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return head.startswith(b"HTTP/1.1 200") and json.loads(body).get("path") == "/victim"
    except ValueError:
        return False


async def run_data_plane_attacks(stack: Stack) -> list[AttackResult]:
    out: list[AttackResult] = []
    for tls in (False, True):
        ctx = stack.ca_context() if tls else None
        port = stack.https_port if tls else stack.http_port
        plane = "data plane " + ("HTTPS" if tls else "HTTP")
        for name, raw, want in DATA_PLANE_ATTACKS:
            got = await send_raw(port, raw, ctx)
            status = got[9:12].decode("latin-1", "replace") if got.startswith(b"HTTP/1.1 ") else "none"
            right = status.startswith("4") if want == "4xx" else status == want
            smuggled = b"/smuggled" in got or b"SMUGGLED" in got
            victim = all([await victim_ok(stack, tls) for _ in range(3)])
            out.append(AttackResult(plane, name, right and not smuggled and victim,
                                    f"answered {status}; victim after it {'ok' if victim else 'WRONG'}"))  # fmt: skip
        # Huge body on a connection, refused or streamed without buffering (Lightsail has no body limit).
        body = 64 * 1024 * 1024
        before = rss_kib(lb_pids(stack))
        head = b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % body
        reader, writer = await asyncio.open_connection(
            LOOPBACK, port, ssl=ctx, server_hostname="localhost" if ctx else None
        )
        writer.write(head)
        block = b"z" * 65536
        sent = 0
        peak = before
        with contextlib.suppress(OSError, ssl.SSLError):
            while sent < body:
                writer.write(block)
                await writer.drain()
                sent += len(block)
                if sent % (8 * 1024 * 1024) == 0:
                    peak = max(peak, rss_kib(lb_pids(stack)))
            resp = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.transport.abort()
        out.append(AttackResult(plane, "64 MiB body (streamed)", resp.startswith(b"HTTP/1.1 200") and
                                peak - before < 32 * 1024,
                                f"load balancer RSS +{(peak - before) / 1024:.1f} MiB while it streamed"))  # fmt: skip
    return out


def lb_pids(stack: Stack) -> list[int]:
    assert stack.lb is not None
    return [stack.lb.pid, *descendants(stack.lb.pid)]


async def slowloris(stack: Stack, port: int, pids: Callable[[], list[int]], n: int, hold: float,
                    line: bytes) -> tuple[int, int, int, int, int]:  # fmt: skip
    """``n`` connections that send a half head and trickle a byte a second; (RSS before, peak, after, cut,
    opened)."""
    await asyncio.sleep(2.0)
    before = rss_kib(pids())
    socks: list[socket.socket] = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            s = socket.create_connection((LOOPBACK, port), timeout=5)
            s.sendall(line)
            s.setblocking(False)
            socks.append(s)
    opened = len(socks)
    peak = before
    start = time.monotonic()
    while time.monotonic() - start < hold:
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(b"X")
        peak = max(peak, rss_kib(pids()))
        await asyncio.sleep(1.0)
    cut = 0
    for s in socks:
        try:
            s.recv(65536)  # an answer (408) or the end of the connection: cut; nothing yet: still held
            cut += 1
        except BlockingIOError:
            pass
        except OSError:
            cut += 1
        s.close()
    await asyncio.sleep(1.0)
    return before, peak, rss_kib(pids()), cut, opened


async def run_control_plane_attacks(stack: Stack) -> list[AttackResult]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    out: list[AttackResult] = []
    creds = configparser.ConfigParser()
    creds.read(stack.data_dir / "credentials")
    admin = Credentials(creds["admin"]["aws_access_key_id"], creds["admin"]["aws_secret_access_key"])
    kms = stack.admin_client("kms")
    key = kms.create_key(Description="adversary")["KeyMetadata"]["KeyId"]

    class NoTarget(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> Any:
            headers = super().headers_to_sign(request)
            del headers["x-amz-target"]
            return headers

    req = AWSRequest(method="POST", url=stack.url + "/", data=json.dumps({"KeyId": key}).encode(),
                     headers={"X-Amz-Target": "TrentService.DescribeKey",
                              "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
    NoTarget(admin, "kms", "us-east-1").add_auth(req)
    req.headers["X-Amz-Target"] = "TrentService.DisableKey"
    status = await asyncio.to_thread(_post, stack.url + "/", dict(req.headers), req.body)
    still = kms.describe_key(KeyId=key)["KeyMetadata"]["Enabled"]
    name = "X-Amz-Target outside SignedHeaders (DescribeKey -> DisableKey)"
    detail = f"answered {status}; key still enabled: {still}"
    out.append(AttackResult("control plane", name, status // 100 == 4 and still, detail))

    # A load balancer's role reading another load balancer.
    stack.admin_client("lightsail").create_load_balancer(loadBalancerName="other-lb", instancePort=80)
    import boto3

    ls = boto3.client(
        "lightsail", endpoint_url=stack.url, region_name="us-east-1",
        aws_access_key_id=creds[LB]["aws_access_key_id"], aws_secret_access_key=creds[LB]["aws_secret_access_key"],
    )  # fmt: skip
    try:
        ls.get_load_balancer(loadBalancerName="other-lb")
        verdict, detail = False, "read it"
    except ls.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        verdict, detail = code == "AccessDeniedException", f"answered {code}"
    out.append(AttackResult("control plane", "a load balancer's role reads another load balancer", verdict, detail))

    # Unauthenticated big bodies: refused before they are read.
    assert stack.control is not None
    pid = stack.control.pid
    before = rss_kib([pid])

    async def big_unsigned() -> int:
        reader, writer = await asyncio.open_connection(LOOPBACK, stack.control_port)
        size = 4 * 1024 * 1024
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\n"
                     b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n" % size)  # fmt: skip
        with contextlib.suppress(OSError):
            for _ in range(size // 65536):
                writer.write(b"{" * 65536)
                await asyncio.wait_for(writer.drain(), 5)
        status = 0
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = int(head[9:12])
        writer.transport.abort()
        return status

    statuses = await asyncio.gather(*(big_unsigned() for _ in range(40)))
    after = rss_kib([pid])
    refused = sum(1 for s in statuses if s // 100 == 4 or s == 0)
    out.append(AttackResult("control plane", "40 x 4 MiB unauthenticated bodies at once",
                            refused == 40 and after - before < 64 * 1024,
                            f"{refused}/40 refused; control plane RSS +{(after - before) / 1024:.1f} MiB"))  # fmt: skip
    return out


def _post(url: str, headers: dict[str, str], body: Any) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def run_slow_clients(stack: Stack) -> list[AttackResult]:
    out: list[AttackResult] = []
    # HTTP: a head that never ends; HTTPS: a ClientHello record (announced as 512 bytes) that never ends.
    for port, name, line in (
        (stack.http_port, "HTTP, a head", b"GET / HTTP/1.1\r\nHost: x\r\n"),
        (stack.https_port, "HTTPS, a ClientHello", b"\x16\x03\x01\x02\x00\x01"),
    ):
        before, peak, after, cut, opened = await slowloris(stack, port, lambda: lb_pids(stack), 1000, 6.0, line)
        out.append(AttackResult(
            "data plane", f"slowloris, 1000 connections trickling ({name})",
            cut == opened == 1000 and https_ok(stack),
            f"{cut}/{opened} cut by the header timeout (3 s); RSS {before // 1024} -> peak {peak // 1024} -> "
            f"{after // 1024} MiB",
        ))  # fmt: skip
    assert stack.control is not None
    pid = stack.control.pid
    before, peak, after, cut, opened = await slowloris(stack, stack.control_port, lambda: [pid], 1000, 15.0,
                                                       b"POST / HTTP/1.1\r\nHost: x\r\n")  # fmt: skip
    out.append(AttackResult(
        "control plane", "slowloris, 1000 connections trickling a head", cut == opened == 1000,
        f"{cut}/{opened} cut by the header timeout (10 s); RSS {before // 1024} -> peak {peak // 1024} -> "
        f"{after // 1024} MiB",
    ))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- revocation latency


async def revocation_latency(stack: Stack, rounds: int) -> list[float]:
    """Milliseconds from ``RevokeGrant`` returning to the first refused handshake, ``rounds`` times (a
    second ``lbproxy setup`` attaches the certificate again in between: a new grant)."""
    out: list[float] = []
    kms = stack.admin_client("kms")
    for _ in range(rounds):
        await until(lambda: https_ok(stack) and stack.lb_ready(), 40)
        await asyncio.sleep(1.0)
        grant = next(g for g in kms.list_grants(KeyId="alias/aws/acm")["Grants"] if g["Name"] == "IssuedThroughACM")
        kms.revoke_grant(KeyId=grant["KeyId"], GrantId=grant["GrantId"])
        returned = time.monotonic()
        deadline = returned + 10
        while time.monotonic() < deadline and await asyncio.to_thread(https_ok, stack):
            pass
        out.append((time.monotonic() - returned) * 1000)
        print(f"  handshake refused {out[-1]:.1f} ms after RevokeGrant returned", flush=True)
        await asyncio.to_thread(stack.setup)
    return out


# ----------------------------------------------------------------------------- report


def report(faults: list[FaultResult], attacks: list[AttackResult], revocations: list[float],
           args: argparse.Namespace, took: float) -> str:  # fmt: skip
    lines = [
        f"# lbproxy adversary run, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`python bench/adversary.py --workers {args.workers}` on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {took:.0f} s in all. Background traffic the whole time: 4 keep-alive "
        "HTTPS clients, 2 keep-alive HTTP clients, 1 client opening an HTTPS connection per request; every response "
        "checked.",
        "",
        f"## Faults: {sum(f.survived for f in faults)} of {len(faults)} survived",
        "",
        "| fault | survived | HTTPS answers | all restored | requests failed (plain HTTP) | notes |",
        "|---|---|---|---|---|---|",
    ]
    for f in faults:
        back = "-" if f.recovery is None else f"{f.recovery:.2f} s"
        https = "-" if f.https_back is None else f"{f.https_back:.2f} s"
        lines.append(f"| {f.name} | {'yes' if f.survived else 'NO'} | {https} | {back} | "
                     f"{f.failed} of {f.ok + f.failed} ({f.http_failed}) | {f.note} |")  # fmt: skip
    lines += [
        "",
        f"## Hostile input: {sum(a.handled for a in attacks)} of {len(attacks)} handled",
        "",
        "| plane | input | handled | what happened |",
        "|---|---|---|---|",
    ]
    for a in attacks:
        lines.append(f"| {a.plane} | {a.name} | {'yes' if a.handled else 'NO'} | {a.detail} |")
    if revocations:
        ms = ", ".join(f"{m:.0f}" for m in revocations)
        lines += ["", "## Revocation latency", "",
                  f"From `RevokeGrant` returning to the first refused handshake, {len(revocations)} rounds: {ms} ms "
                  f"(median {statistics.median(revocations):.0f} ms)."]  # fmt: skip
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lbproxy-adversary-") as tmp_name:
        stack = Stack(Path(tmp_name), args.workers)
        try:
            print("starting the stack ...", flush=True)
            await asyncio.to_thread(stack.start_control)
            for i in range(3):
                await asyncio.to_thread(stack.start_backend, i)
            await asyncio.to_thread(stack.setup)
            await asyncio.to_thread(stack.start_lb)
            faults: list[FaultResult] = []
            attacks: list[AttackResult] = []
            revocations: list[float] = []
            if "revocation" in args.only:
                print("revocation latency:", flush=True)
                revocations = await revocation_latency(stack, args.revocations)
            if "faults" in args.only:
                traffic = Traffic(stack)
                clients = traffic.start(time.monotonic() + 900)
                print("faults:", flush=True)
                faults = await run_faults(stack, traffic)
                traffic.stopping = True
                await asyncio.gather(*clients)
            if "attacks" in args.only:
                print("hostile input:", flush=True)
                attacks = await run_data_plane_attacks(stack)
                attacks += await run_slow_clients(stack)
                attacks += await run_control_plane_attacks(stack)
                for a in attacks:
                    print(f"  {a.plane}: {a.name}: {'handled' if a.handled else 'NOT HANDLED'} ({a.detail})",
                          flush=True)  # fmt: skip
        finally:
            stack.stop()
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp_name).glob("*.log"):
                    (args.keep_logs / log.name).write_bytes(log.read_bytes())
    text = report(faults, attacks, revocations, args, time.monotonic() - started)
    out = args.out or HERE / f"ADVERSARY-{dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(f"\nwrote {out}")
    return 0 if all(f.survived for f in faults) and all(a.handled for a in attacks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="lbproxy lb --workers (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="report file (default bench/ADVERSARY-<date>.md)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy every process's log into this folder")
    parser.add_argument(
        "--only", default="revocation,faults,attacks",
        help="sections to run, comma-separated: revocation, faults, attacks (default: all)",
    )  # fmt: skip
    parser.add_argument("--revocations", type=int, default=5, help="revocation latency rounds (default 5)")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
