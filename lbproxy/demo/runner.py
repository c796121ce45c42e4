"""``lbproxy demo``: the whole product on 127.0.0.1 from one command, no Docker.

It runs the same commands docker compose runs, as subprocesses (``python -m lbproxy ...``):
``control``, three ``backend``s (web-1..web-3), the one-shot ``setup``, then ``lb`` with a short report
and health-check interval. It narrates the data plane's part of the key flow, exports the root CA, prints
what to try, and waits. Ctrl-C or SIGTERM stops everything in order: the load balancer first (its
key-holding workers exit: the key is wiped), then the backends, then the control plane.

Children run in their own process group (so Ctrl-C in the terminal reaches only the demo, which stops them
in order) and, on Linux, get SIGTERM if the demo itself dies. Their logs go to ``DATA_DIR/logs/``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from lbproxy.config import ConfigError, parse_hostport
from lbproxy.demo.setup import ACM_KEY_ALIAS, AdminSession, SetupError, find_grant

LB_NAME = "demo-lb"
BACKEND_NAMES = ("web-1", "web-2", "web-3")
START_TIMEOUT = 40.0
STOP_TIMEOUT = 30.0
#: What ``lbproxy control`` and the demo put in a data dir; ``--fresh`` deletes nothing else.
DATA_DIR_ENTRIES = frozenset(
    {
        "state.sqlite3",
        "state.sqlite3-wal",
        "state.sqlite3-shm",
        "credentials",
        "root.key",
        "ca",
        "audit.jsonl",
        "dashboard-token",
        "ca.pem",
        "logs",
    }
)
#: Environment variables that would override the load balancer's own profile.
_AWS_OVERRIDES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE")

Say = Callable[[str], None]


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DemoOptions:
    data_dir: Path
    fresh: bool = False
    control_listen: str = "127.0.0.1:4599"
    http_listen: str = "127.0.0.1:8080"
    https_listen: str = "127.0.0.1:8443"
    backend_ports: tuple[int, ...] = (9001, 9002, 9003)
    workers: int = 1
    backend_host: str = "127.0.0.1"


# -- before anything starts ----------------------------------------------------------------------------


def listen_flags(opts: DemoOptions) -> list[tuple[str, str]]:
    """Every address the demo will listen on, with the flag that sets it."""
    pairs = [
        ("--control-listen", opts.control_listen),
        ("--http-listen", opts.http_listen),
        ("--https-listen", opts.https_listen),
    ]
    pairs += [("--backend-ports", f"{opts.backend_host}:{p}") for p in opts.backend_ports]
    return pairs


def port_problem(flag: str, address: str) -> str | None:
    """Why ``address`` cannot be listened on (as the servers would: SO_REUSEADDR), or None."""
    host, port = parse_hostport(address, field=flag)
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"{host}:{port} ({flag}) is already in use: is an earlier `lbproxy demo` still running? "
                    f"See who holds it with `ss -ltnp 'sport = :{port}'`, stop it, or pass another {flag}"
                )
            return f"cannot listen on {host}:{port} ({flag}): {exc.strerror}"
    return None


def check_ports(opts: DemoOptions) -> None:
    for flag, address in listen_flags(opts):
        problem = port_problem(flag, address)
        if problem:
            raise DemoError(problem, code=2)


def looks_like_data_dir(path: Path) -> tuple[bool, str]:
    """Whether ``--fresh`` may delete ``path``: empty, or lbproxy's state and nothing else."""
    if not path.is_dir():
        return False, "not a directory"
    names = {p.name for p in path.iterdir()}
    if not names:
        return True, "empty"
    if "state.sqlite3" not in names:
        return False, "no state.sqlite3 in it"
    unknown = sorted(names - DATA_DIR_ENTRIES)
    if unknown:
        return False, f"it holds files lbproxy did not write: {', '.join(unknown[:5])}"
    return True, "lbproxy data dir"


def prepare_data_dir(opts: DemoOptions, say: Say) -> None:
    if opts.fresh and opts.data_dir.exists():
        ok, why = looks_like_data_dir(opts.data_dir)
        if not ok:
            raise DemoError(
                f"--fresh: {opts.data_dir} does not look like an lbproxy data dir ({why}); not deleting it", code=2
            )
        shutil.rmtree(opts.data_dir)
        say(f"--fresh: deleted {opts.data_dir}")
    elif (opts.data_dir / "state.sqlite3").exists():
        say(f"reusing the state in {opts.data_dir} (pass --fresh to start over)")
    (opts.data_dir / "logs").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(opts.data_dir, 0o700)


# -- children ------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the demo dies, so no stale process keeps a port."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join("    " + line for line in text)

    def read_line(self, want: Callable[[str], bool], timeout: float = START_TIMEOUT) -> str:
        """The first stdout line ``want`` accepts (bounded); DemoError if the child exits or is too slow."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                raw = self.proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").strip()
                if want(line):
                    return line
            elif self.proc.poll() is not None:
                break
        self.proc.poll()
        why = f"exited with {self.proc.returncode}" if self.proc.returncode is not None else f"not ready in {timeout}s"
        raise DemoError(f"{self.name} {why}; its log ({self.log}):\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@dataclass
class Demo:
    opts: DemoOptions
    say: Say
    children: list[Child] = field(default_factory=list)
    control_url: str = ""
    dashboard_url: str = ""
    lb_ready: dict[str, Any] = field(default_factory=dict)
    grant: dict[str, Any] = field(default_factory=dict)

    @property
    def credentials_file(self) -> Path:
        return self.opts.data_dir / "credentials"

    @property
    def ca_file(self) -> Path:
        return self.opts.data_dir / "ca.pem"

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        stdout: int | IO[Any] | None = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        log = self.opts.data_dir / "logs" / f"{name}.log"
        with log.open("ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lbproxy", *args],
                stdout=stdout,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                bufsize=0,  # unbuffered: select() on the pipe must see every line we have not read yet
                process_group=0,
                preexec_fn=_die_with_parent,
            )
        self.children.append(Child(name, proc, log))
        return proc

    # -- start, in order ---------------------------------------------------------------------------
    def start(self) -> None:
        d = str(self.opts.data_dir)
        self.spawn("control", ["control", "--listen", self.opts.control_listen, "--data-dir", d])
        control = self.children[-1]
        line = control.read_line(lambda s: s.startswith("lbproxy control listening on "))
        self.control_url = line.split()[4]
        self.dashboard_url = control.read_line(lambda s: s.startswith("dashboard: ")).split(" ", 1)[1]
        self.say(f"* control plane (KMS, ACM, Lightsail APIs, dashboard) on {self.control_url}, state in {d}")

        addresses: dict[str, str] = {}
        for name, port in zip(BACKEND_NAMES, self.opts.backend_ports, strict=True):
            self.spawn(name, ["backend", "--name", name, "--listen", f"{self.opts.backend_host}:{port}"])
            addresses[name] = json.loads(self.children[-1].read_line(lambda s: s.startswith("{")))["listening"]
        self.say(f"* backends: {', '.join(f'{n} on {a}' for n, a in addresses.items())}")

        self.run_setup(addresses)
        self.start_lb()

    def run_setup(self, addresses: dict[str, str]) -> None:
        args = ["setup", "--control", self.control_url, "--data-dir", str(self.opts.data_dir), "--name", LB_NAME]
        for name, address in addresses.items():
            args += ["--instance", f"{name}={address}"]
        sys.stdout.flush()
        proc = self.spawn("setup", args, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=None)
        try:
            code = proc.wait(START_TIMEOUT + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
        self.children.remove(next(c for c in self.children if c.proc is proc))
        if code != 0:
            raise DemoError(f"lbproxy setup failed (exit {code}); its log: {self.opts.data_dir / 'logs/setup.log'}")

    def start_lb(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _AWS_OVERRIDES}
        env.update(
            AWS_SHARED_CREDENTIALS_FILE=str(self.credentials_file), AWS_PROFILE=LB_NAME, AWS_CONFIG_FILE=os.devnull
        )
        self.spawn(
            "lb",
            [
                "lb",
                "--name",
                LB_NAME,
                "--control",
                self.control_url,
                "--http-listen",
                self.opts.http_listen,
                "--https-listen",
                self.opts.https_listen,
                "--workers",
                str(self.opts.workers),
                "--report-interval",
                "1",
                "--health-check-interval",
                "2",
            ],
            env=env,
        )
        self.lb_ready = json.loads(self.children[-1].read_line(lambda s: s.startswith("{")))
        session = AdminSession(self.control_url, self.credentials_file)
        lb_arn = session.client("lightsail").get_load_balancer(loadBalancerName=LB_NAME)["loadBalancer"]["arn"]
        self.grant = find_grant(session.client("kms"), lb_arn) or {}
        workers = ", ".join(str(p) for p in self.lb_ready.get("workers", []))
        self.say(
            f"* data plane `lbproxy lb --name {LB_NAME}` started (supervisor pid {self.lb_ready['pid']}, "
            f"key-holding workers {workers or '-'})"
        )
        if self.lb_ready.get("key") == "loaded":
            principal = self.grant.get("GranteePrincipal", LB_NAME)
            self.say(
                f"  authenticated as its own principal {principal}, fetched the sealed key and called KMS Decrypt "
                "with the grant's encryption context; the key service checked principal, grant, operation and context"
            )
            record = last_decrypt(self.opts.data_dir, principal)
            if record:
                keys = ", ".join(record.get("requestParameters", {}).get("encryptionContextKeys", []))
                grant_id = str(record.get("additionalEventData", {}).get("grantId", "?"))
                self.say(
                    f"  audit trail: {record.get('eventTime')} Decrypt by {principal} through grant "
                    f"{grant_id[:16]}... (encryption context keys {keys}; values and plaintext never logged)"
                )
            self.say(
                "  decrypted the private key into memory only (a bytearray handed to OpenSSL through a memfd, "
                "then zeroed): no file written"
            )
            self.say(
                f"* HTTPS listening on https://localhost:{self._port('https')} "
                f"(HTTP on http://localhost:{self._port('http')})"
            )
        else:
            self.say(f"  no key loaded (key state {self.lb_ready.get('key')}): HTTP only on {self.lb_ready['http']}")
        self.wait_healthy(session)

    def wait_healthy(self, session: AdminSession, timeout: float = 10.0) -> None:
        ls = session.client("lightsail")
        deadline = time.monotonic() + timeout
        summary: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            summary = ls.get_load_balancer(loadBalancerName=LB_NAME)["loadBalancer"]["instanceHealthSummary"]
            if summary and all(h["instanceHealth"] == "healthy" for h in summary):
                break
            time.sleep(0.3)
        states = ", ".join(f"{h['instanceName']} {h['instanceHealth']}" for h in summary)
        self.say(f"* health checks on /health every 2 s: {states}")

    def _port(self, kind: str) -> int:
        return int(str(self.lb_ready[kind]).rsplit(":", 1)[1])

    def first_request(self) -> None:
        """One HTTPS request the way curl will make it: verify against the exported CA, name localhost."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        host = self.opts.https_listen.rsplit(":", 1)[0].strip("[]")
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        try:
            with (
                socket.create_connection((host, self._port("https")), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while len(data) < 65536 and (chunk := tls.recv(4096)):
                    data += chunk
        except (OSError, ssl.SSLError) as exc:
            self.say(f"  (a first HTTPS request failed: {exc})")
            return
        body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
        self.say(f"* first HTTPS request, verified against {self.ca_file}: {body}")

    # -- what to try ---------------------------------------------------------------------------------
    def next_steps(self) -> str:
        q = shlex.quote
        aws = (
            f"AWS_SHARED_CREDENTIALS_FILE={q(str(self.credentials_file))} aws --profile admin "
            f"--endpoint-url {self.control_url}"
        )
        key_id = str(self.grant.get("KeyId", ACM_KEY_ALIAS)).rsplit("/", 1)[-1]
        grant_id = self.grant.get("GrantId", "GRANT_ID")
        https, http = self._port("https"), self._port("http")
        lines = [
            "",
            "Try it:",
            f"  curl --cacert {q(str(self.ca_file))} https://localhost:{https}/",
            f"  curl http://localhost:{http}/",
            "  (run it a few times: round robin over web-1, web-2, web-3)",
            "",
            f"Dashboard (key state, grants, health, audit trail, live): {self.dashboard_url}",
            "",
            "With the AWS CLI (pip install awscli), as the admin principal:",
            f"  {aws} kms list-grants --key-id {ACM_KEY_ALIAS}",
            f"  {aws} lightsail get-load-balancer --load-balancer-name {LB_NAME}",
            "Revoke the grant: the next HTTPS handshake fails, plain HTTP keeps answering, the key is wiped:",
            f"  {aws} kms revoke-grant --key-id {key_id} --grant-id {grant_id}",
            "Or detach the certificate (Lightsail detaches by deleting it; the grant is retired):",
            f"  {aws} lightsail delete-load-balancer-tls-certificate --load-balancer-name {LB_NAME} "
            f"--certificate-name {LB_NAME}-cert --force",
            "Get HTTPS back (a new grant; a deleted certificate: just run `lbproxy demo` again):",
            f"  {aws} lightsail attach-load-balancer-tls-certificate --load-balancer-name {LB_NAME} "
            f"--certificate-name {LB_NAME}-cert",
            "",
            f"Audit trail: lbproxy audit --data-dir {q(str(self.opts.data_dir))} -f    logs: "
            f"{self.opts.data_dir / 'logs'}",
            "Ctrl-C stops everything (the load balancer first: its key-holding workers exit, wiping the key).",
        ]
        return "\n".join(lines)

    # -- while running, and the end ----------------------------------------------------------------
    def watch(self) -> Child:
        """Until interrupted (KeyboardInterrupt), or a child exits on its own: that child."""
        while True:
            for child in self.children:
                if child.proc.poll() is not None:
                    return child
            time.sleep(0.5)

    def stop(self) -> None:
        """Load balancer first (revocation order: the key-holding workers exit), backends, control last."""
        order = [c for c in self.children if c.name == "lb"]
        order += [c for c in self.children if c.name.startswith("web-")]
        order += [c for c in self.children if c.name == "control"]
        for child in order:
            code = child.stop()
            if child.name == "lb":
                how = "exit 0" if code == 0 else f"exit {code}"
                self.say(f"load balancer stopped ({how}): key wiped from memory: the key-holding workers exited")
        if self.children:
            self.say("backends and control plane stopped; state kept in " + str(self.opts.data_dir))
        self.children.clear()


def last_decrypt(data_dir: Path, principal_arn: str) -> dict[str, Any] | None:
    """The newest successful KMS Decrypt by ``principal_arn`` in the audit trail (bounded: one pass)."""
    from lbproxy.core.audit import AUDIT_FILE, read_records

    found = None
    for rec in read_records(data_dir / AUDIT_FILE):
        if (
            rec.get("eventName") == "Decrypt"
            and not rec.get("errorCode")
            and rec.get("userIdentity", {}).get("arn") == principal_arn
        ):
            found = rec
    return found


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(opts: DemoOptions, say: Say | None = None) -> int:
    def out(text: str) -> None:
        print(text, flush=True)

    say = say or out
    try:
        check_ports(opts)
        prepare_data_dir(opts, say)
    except (DemoError, ConfigError) as exc:
        print(f"lbproxy demo: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, DemoError) else 2
    demo = Demo(opts, say)
    # Installed explicitly: a demo started in the background (`lbproxy demo &`, nohup) inherits SIGINT
    # ignored, and Python then installs no handler of its own; Ctrl-C / ``kill -INT`` must stop it anyway.
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        demo.start()
        from lbproxy.certs.ca import export_root

        demo.ca_file.write_text(export_root(opts.data_dir))
        demo.first_request()
        say(demo.next_steps())
        died = demo.watch()
        say(f"{died.name} exited unexpectedly ({died.proc.returncode}); its log ({died.log}):\n{died.log_tail()}")
        code = 1
    except KeyboardInterrupt:
        say("\nstopping ...")
    except (DemoError, SetupError) as exc:
        print(f"lbproxy demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the orderly stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            demo.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
    return code
