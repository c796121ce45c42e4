"""docker-compose.yml cannot drift from the code: each service's command line runs on 127.0.0.1 as compose
would run it, and HTTPS works through the ``lb`` service with round robin over web1..web3.

What stands in for Docker: service hostnames -> 127.0.0.1; every ``0.0.0.0:PORT`` a service listens on (and
its published port) -> a free port on 127.0.0.1; the named volume's ``/data`` -> a tmp dir; the image's
``ENTRYPOINT ["lbproxy"]`` -> ``python -m lbproxy``; ``environment`` from the file (plus ``AWS_CONFIG_FILE``
pointing nowhere, as in a fresh container); ``depends_on`` conditions honoured in dependency order
(``service_healthy`` runs the healthcheck command, ``service_completed_successfully`` waits for exit 0).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lbproxy.testing import free_ports

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LISTEN_RE = re.compile(r"^0\.0\.0\.0:(\d+)$")

pytestmark = pytest.mark.timeout(90)


def load_compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())  # SafeLoader resolves the `<<: *lbproxy` merge keys
    assert isinstance(doc, dict) and "services" in doc
    return doc


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def start_order(services: dict[str, Any]) -> list[str]:
    order: list[str] = []
    pending = dict(services)
    for _ in range(len(services)):
        ready = [n for n, s in pending.items() if all(d in order for d in depends_on(s))]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += sorted(ready)
        for n in ready:
            del pending[n]
        if not pending:
            break
    return order


@dataclass
class ComposeOnLoopback:
    """Rewrites compose's world (hostnames, container ports, /data) to this machine's, and runs services."""

    doc: dict[str, Any]
    data: Path
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def services(self) -> dict[str, Any]:
        return dict(self.doc["services"])

    def allocate(self) -> None:
        wanted = [
            (name, int(m.group(1)))
            for name, svc in self.services.items()
            for arg in svc.get("command", [])
            if (m := LISTEN_RE.match(str(arg)))
        ]
        self.ports = dict(zip(wanted, free_ports(len(wanted)), strict=True))

    def rewrite(self, value: str, service: str) -> str:
        """One argument or env value: hostnames and container ports -> 127.0.0.1 and our ports."""
        if m := LISTEN_RE.match(value):
            return f"127.0.0.1:{self.ports[(service, int(m.group(1)))]}"
        if value == "/data" or value.startswith("/data/"):
            return str(self.data) + value[len("/data") :]

        def host_port(m: re.Match[str]) -> str:
            host, port = m.group(1), int(m.group(2))
            target = service if host in ("127.0.0.1", "localhost") else host
            return f"127.0.0.1:{self.ports[(target, port)]}" if (target, port) in self.ports else m.group(0)

        names = "|".join(re.escape(n) for n in [*self.services, "127.0.0.1", "localhost"])
        return re.sub(rf"\b({names}):(\d+)\b", host_port, value)

    def argv(self, service: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "lbproxy",
            *(self.rewrite(str(a), service) for a in self.services[service]["command"]),
        ]

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "LBPROXY_DATA_DIR"}
        env["AWS_CONFIG_FILE"] = os.devnull  # a fresh container has no ~/.aws/config
        for k, v in (self.services[service].get("environment") or {}).items():
            env[k] = self.rewrite(str(v), service)
        return env

    def start(self, service: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as err:
            proc = subprocess.Popen(
                self.argv(service), stdout=subprocess.PIPE, stderr=err, env=self.env(service), bufsize=0
            )
        self.procs[service] = proc
        return proc

    def healthcheck(self, service: str) -> None:
        hc = self.services[service]["healthcheck"]
        test = [str(t) for t in hc["test"]]
        assert test[0] == "CMD", test
        argv = [self.rewrite(t, service) for t in test[1:]]
        if argv[0] == "python":
            argv[0] = sys.executable
        for _ in range(int(hc.get("retries", 3)) * 2):
            if subprocess.run(argv, capture_output=True, timeout=10, env=self.env(service)).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"{service}'s healthcheck never passed: {argv}")

    def stop_all(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name in reversed(list(self.procs)):  # reverse dependency order: lb first, control last
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stdout:
                proc.stdout.close()
            codes[name] = proc.returncode
        return codes


def first_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output in time"
    line = proc.stdout.readline().decode().strip()
    assert line, f"exited with {proc.poll()} before printing a line"
    return line


def https_get(port: int, cafile: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(cafile))  # verification on, hostname checked: no -k
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /compose HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        for _ in range(100):
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


def test_the_file_is_what_the_issue_asks_for() -> None:
    doc = load_compose()
    services = doc["services"]
    assert set(services) == {"control", "web1", "web2", "web3", "setup", "lb"}
    assert {p for s in services.values() for p in s.get("ports", [])} == {"4599:4599", "8080:8080", "8443:8443"}
    for name, svc in services.items():
        assert svc["build"] == "." and svc["image"] == "lbproxy:local", name
        for port in svc.get("ports", []):  # every published port is one the service listens on
            container_port = port.rsplit(":", 1)[1]
            assert f"0.0.0.0:{container_port}" in svc["command"], (name, port)
    assert "data" in doc["volumes"]
    assert depends_on(services["setup"])["control"] == "service_healthy"
    assert depends_on(services["lb"]) == {"setup": "service_completed_successfully"}
    assert services["lb"]["environment"] == {
        "AWS_SHARED_CREDENTIALS_FILE": "/data/credentials",
        "AWS_PROFILE": "demo-lb",
    }
    assert 'ENTRYPOINT ["lbproxy"]' in DOCKERFILE.read_text()
    assert "FROM python:3.11-slim" in DOCKERFILE.read_text()


def test_docker_compose_validates_the_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    done = subprocess.run([exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[ComposeOnLoopback]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    c = ComposeOnLoopback(load_compose(), data)
    c.allocate()
    try:
        yield c
    finally:
        c.stop_all()


def test_every_service_runs_and_https_round_robins(compose: ComposeOnLoopback, tmp_path: Path) -> None:
    order = start_order(compose.services)
    assert order.index("control") < order.index("setup") < order.index("lb")
    lb_ready: dict[str, Any] = {}
    for name in order:
        for dep, condition in depends_on(compose.services[name]).items():
            if condition == "service_healthy":
                compose.healthcheck(dep)
            elif condition == "service_completed_successfully":
                proc = compose.procs[dep]
                assert proc.wait(60) == 0, f"{dep} failed: {(tmp_path / f'{dep}.log').read_text()[-2000:]}"
        proc = compose.start(name, tmp_path / f"{name}.log")
        if name == "lb":
            lb_ready = json.loads(first_line(proc, timeout=40))
        elif name != "setup":
            first_line(proc)  # control's "listening on", a backend's JSON line: it is serving
    assert lb_ready["key"] == "loaded", lb_ready
    assert compose.procs["setup"].returncode == 0

    https_port = int(lb_ready["https"].rsplit(":", 1)[1])
    assert https_port == compose.ports[("lb", 8443)]
    ca = compose.data / "ca.pem"  # written by the setup service, as `docker compose cp control:/data/ca.pem`
    seen: set[str] = set()
    for _ in range(12):
        seen.add(https_get(https_port, ca).split(":", 1)[0])
        if seen == {"web1", "web2", "web3"}:
            break
    assert seen == {"web1", "web2", "web3"}

    codes = compose.stop_all()
    assert codes["lb"] == 0 and codes["control"] == 0, codes
