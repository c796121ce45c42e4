"""The whole product on 127.0.0.1 for end-to-end tests: a real control plane (in-process thread), demo
backends, and ``lbproxy lb`` as a subprocess that authenticates as its load balancer's principal."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from botocore.credentials import ReadOnlyCredentials

from lbproxy.backend import make_app
from lbproxy.control import dashboard
from lbproxy.control.app import bound_port
from lbproxy.control.dataplane import install_routes
from lbproxy.proxy.controllink import ControlClient, Signer
from lbproxy.testing import ControlThread
from lbproxy.testing import wait_until as _wait_until


@dataclass
class Certificate:
    ca: trustme.CA
    key_pem: bytes
    lightsail_name: str
    acm_arn: str

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


@dataclass
class Stack:
    control: ControlThread
    tmp: Path
    lb_name: str = "e2e-lb"
    backends: dict[str, int] = field(default_factory=dict)
    lb: subprocess.Popen[bytes] | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)
    #: The backends run on their own loop, so they outlive a control-plane restart.
    _backend_loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _backend_thread: threading.Thread | None = None

    # -- the control plane side, through the public API ------------------------------------------
    def admin_link(self) -> ControlClient:
        a = self.control.admin
        return ControlClient(
            self.control.url, Signer(ReadOnlyCredentials(a.access_key_id, a.secret_access_key, None), "us-east-1")
        )

    def start_backends(self, *names: str) -> None:
        async def start(name: str) -> int:
            runner = web.AppRunner(make_app(name), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            return bound_port(site)

        if self._backend_thread is None:
            self._backend_thread = threading.Thread(target=self._backend_loop.run_forever, daemon=True)
            self._backend_thread.start()
        link = self.admin_link()
        for name in names:
            port = asyncio.run_coroutine_threadsafe(start(name), self._backend_loop).result(10)
            self.backends[name] = port
            link.call_json("PUT", f"/lbproxy/v1/instances/{name}", {"address": f"127.0.0.1:{port}"})

    def create_load_balancer(self, health_check_path: str = "/health") -> None:
        ls = self.control.client("lightsail")
        ls.create_load_balancer(loadBalancerName=self.lb_name, instancePort=80, healthCheckPath=health_check_path)
        ls.attach_instances_to_load_balancer(loadBalancerName=self.lb_name, instanceNames=list(self.backends))

    def import_certificate(self, name: str, key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> Certificate:
        ca = trustme.CA(key_type=key_type)
        leaf = ca.issue_cert("localhost", "127.0.0.1", key_type=key_type)
        acm = self.control.client("acm")
        pems = leaf.cert_chain_pems
        arn = acm.import_certificate(
            Certificate=pems[0].bytes(),
            PrivateKey=leaf.private_key_pem.bytes(),
            CertificateChain=b"".join(p.bytes() for p in pems[1:]) or ca.cert_pem.bytes(),
        )["CertificateArn"]
        self.admin_link().call_json(
            "POST",
            f"/lbproxy/v1/load-balancers/{self.lb_name}/tls-certificates",
            {"certificateName": name, "acmCertificateArn": arn},
        )
        return Certificate(ca, leaf.private_key_pem.bytes(), name, arn)

    def attach(self, cert: Certificate) -> None:
        self.control.client("lightsail").attach_load_balancer_tls_certificate(
            loadBalancerName=self.lb_name, certificateName=cert.lightsail_name
        )

    def dashboard_state(self) -> dict[str, Any]:
        """What the dashboard's page reads (``GET /dashboard/api/state`` with its token)."""
        token = (self.control.settings.data_dir / dashboard.TOKEN_FILE).read_text().strip()
        req = urllib.request.Request(self.control.url + "/dashboard/api/state", headers={dashboard.TOKEN_HEADER: token})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def grants(self) -> list[dict[str, Any]]:
        return self.control.client("kms").list_grants(KeyId="alias/aws/acm")["Grants"]  # type: ignore[no-any-return]

    def serve_https(self, cert_name: str, *lb_args: str) -> Certificate:
        """One backend ``web-1``, the load balancer, an imported certificate attached, ``lbproxy lb`` serving."""
        self.start_backends("web-1")
        self.create_load_balancer()
        cert = self.import_certificate(cert_name)
        self.attach(cert)
        self.start_lb(*lb_args)
        return cert

    # -- the data plane ------------------------------------------------------------------------
    def start_lb(self, *extra: str, workers: int = 1) -> dict[str, Any]:
        settings = self.control.settings
        env = {
            **os.environ,
            "AWS_SHARED_CREDENTIALS_FILE": str(settings.data_dir / "credentials"),
            "AWS_PROFILE": self.lb_name,
            "AWS_CONFIG_FILE": os.devnull,
        }
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        self.lb = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lbproxy",
                "lb",
                "--name",
                self.lb_name,
                "--control",
                self.control.url,
                "--http-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
                "--workers",
                str(workers),
                "--health-check-interval",
                "0.3",
                "--report-interval",
                "0.3",
                *extra,
            ],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.lb.stdout is not None
        ready, _, _ = select.select([self.lb.stdout], [], [], 40)
        assert ready, "lbproxy lb did not start"
        line = self.lb.stdout.readline()
        assert line, "lbproxy lb exited at start"
        self.ready = json.loads(line)
        return self.ready

    @property
    def http_port(self) -> int:
        return int(self.ready["http"].rsplit(":", 1)[1])

    @property
    def https_port(self) -> int:
        return int(self.ready["https"].rsplit(":", 1)[1])

    def stop_lb(self) -> int | None:
        if self.lb is None:
            return None
        if self.lb.poll() is None:
            self.lb.send_signal(signal.SIGTERM)
            try:
                return self.lb.wait(30)
            except subprocess.TimeoutExpired:
                self.lb.kill()
                self.lb.wait(5)
        return self.lb.returncode

    def stop(self) -> None:
        self.stop_lb()

        async def cleanup() -> None:
            for r in self._runners:
                await r.cleanup()

        if self._backend_thread is not None:
            asyncio.run_coroutine_threadsafe(cleanup(), self._backend_loop).result(10)
            self._backend_loop.call_soon_threadsafe(self._backend_loop.stop)
            self._backend_thread.join(5)


def get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 5.0) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def handshake_ok(port: int, ctx: ssl.SSLContext) -> bool:
    """Whether a TLS handshake with ``localhost`` on ``port`` succeeds (and verifies) right now."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=3) as s,
            ctx.wrap_socket(s, server_hostname="localhost"),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


def handshake_fails(port: int, ctx: ssl.SSLContext) -> bool:
    return not handshake_ok(port, ctx)


@dataclass
class ControlProcess:
    """``lbproxy control`` as a real process on a fixed port (so it can be ``kill -9``-ed and restarted
    over the same data dir); its log goes to ``DATA_DIR/../control-N.log``."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ControlProcess:
        self.starts += 1
        log = open(self.data_dir.parent / f"control-{self.starts}.log", "wb")  # noqa: SIM115
        with log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lbproxy", "control", "--data-dir", str(self.data_dir),
                 "--listen", f"127.0.0.1:{self.port}", "--validation-delay", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def healthy() -> bool:
            try:
                return get(self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(healthy, timeout=20)
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        key_id, secret = self._admin()
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=key_id,
            aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}),
        )  # fmt: skip

    def _admin(self) -> tuple[str, str]:
        import configparser

        creds = configparser.ConfigParser()
        creds.read(self.data_dir / "credentials")
        return creds["admin"]["aws_access_key_id"], creds["admin"]["aws_secret_access_key"]


def make_stack(tmp: Path) -> Stack:
    from lbproxy.core.clock import SystemClock

    ct = ControlThread(
        tmp / "data", clock=SystemClock(), validation_delay=0.0, installers=[install_routes, dashboard.install]
    )
    return Stack(ct.start(), tmp)


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    return _wait_until(getattr(predicate, "__name__", "condition"), predicate, timeout, interval)
