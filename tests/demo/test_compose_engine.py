"""``docker-compose up`` of the real docker-compose.yml on a real Docker engine, end to end.

The engine is ``.ci/compose-engine``'s (dockerd in a network namespace of its own, so the published ports
4599, 8080 and 8443 exist only in that namespace: curl and the AWS CLI run there through
``.ci/compose-engine run``). Without a running engine the test is skipped and says why; ``.ci/run`` starts
the engine and sets ``LBPROXY_COMPOSE_ENGINE=required``, which turns a missing engine into a failure.
Run it locally as root::

    .ci/compose-engine start          # ~3 min the first time, seconds after that
    python -m pytest -m compose       # ~2 min (the image build is most of it)
    .ci/compose-engine stop

What it proves, in order:

1. ``docker-compose up -d --build``: the image builds from the Dockerfile, ``setup`` completes after
   ``control`` is healthy, ``lb`` loads the key through its grant.
2. The CA is copied out of the ``data`` volume (``docker cp``, as ``docker compose cp``) and
   ``curl --cacert`` (no ``-k``) on the published 8443 sees web1, web2 and web3 (round robin).
3. ``docker-compose stop lb`` with the key loaded: its log says it wipes the key and the key state became
   ``wiped``; ``start lb`` loads it again through the grant and HTTPS answers.
4. The grant is revoked with the AWS CLI against the published 4599 (credentials copied out of the volume,
   profile ``admin``): the next handshake is refused (``sslv3 alert handshake failure``), plain HTTP on
   8080 still answers 200.
5. ``docker-compose stop lb``: exit 0, its log says the key was wiped; ``down -v`` leaves no container,
   network or volume of the project.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / ".ci" / "compose-engine"
PROJECT = "lbproxy-e2e"
BACKENDS = {"web1", "web2", "web3"}
READY = '"key": "loaded"'  # the lb's JSON line once it serves with the key
STOPPING = "stopping: refusing handshakes, draining, wiping the key"  # lbproxy lb at SIGTERM
WIPED = "key state: wiped"  # the data-plane agent when no live process holds the key any more
HANDSHAKE_REFUSED = "sslv3 alert handshake failure"

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]


def sh(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, check=False)


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def engine_env() -> dict[str, str]:
    """DOCKER_HOST of the running engine, or skip (fail when .ci/run said the engine is required)."""
    why = ""
    if sys.platform != "linux" or os.geteuid() != 0:
        why = "needs root on Linux (the engine's network namespace)"
    elif shutil.which("docker-compose") is None or shutil.which("docker") is None:
        why = "docker-compose or docker is not installed (.ci/compose-engine start installs them)"
    else:
        done = sh([str(ENGINE), "status"], timeout=30)
        if done.returncode != 0:
            why = done.stderr.strip() or f"{ENGINE} status exited {done.returncode}"
        else:
            words = done.stdout.split()
            env = dict(w.split("=", 1) for w in words if "=" in w)
            if env.get("DOCKER_HOST"):
                return {"DOCKER_HOST": env["DOCKER_HOST"]}
            why = f"unexpected status output: {done.stdout!r}"
    reason = f"no compose engine: {why}; start one with `.ci/compose-engine start` (as root; ~1.5 min the first time)"
    if os.environ.get("LBPROXY_COMPOSE_ENGINE") == "required":
        pytest.fail(f"LBPROXY_COMPOSE_ENGINE=required but {reason}")
    pytest.skip(reason)


@dataclass
class Compose:
    env: dict[str, str]
    tmp: Path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return sh(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *args], timeout, self.env)

    def ok(self, *args: str, timeout: float = 120) -> str:
        done = self(*args, timeout=timeout)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr[-3000:]}"
        return done.stdout

    def docker(self, *args: str, timeout: float = 60) -> str:
        done = sh(["docker", *args], timeout, self.env)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    def logs(self, service: str) -> str:
        return self.ok("logs", "--no-color", service, timeout=60)

    def container(self, service: str) -> str:
        cid = self.ok("ps", "-q", service, timeout=60).strip()
        assert cid, f"no container for {service}"
        return cid

    def exit_code(self, service: str) -> int:
        return int(self.docker("inspect", "-f", "{{.State.ExitCode}}", self.container(service)).strip())

    def copy_out(self, service: str, path: str) -> Path:
        """``docker cp`` a file out of a service's container (docker compose v2 calls it ``compose cp``)."""
        dest = self.tmp / Path(path).name
        self.docker("cp", f"{self.container(service)}:{path}", str(dest))
        return dest

    def left(self) -> str:
        label = f"label=com.docker.compose.project={PROJECT}"
        return "".join(
            self.docker(kind, *ls, "-q", "--filter", label)
            for kind, *ls in (("ps", "-a"), ("network", "ls"), ("volume", "ls"))
        ).strip()


def in_engine(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a host binary inside the engine's network namespace, where the published ports are."""
    return sh([str(ENGINE), "run", *argv], timeout, env)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return in_engine("curl", "-sS", "--max-time", "5", *args, timeout=30)


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[Compose]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_", "COMPOSE_"))}
    env.update(engine_env(), COMPOSE_PROJECT_NAME=PROJECT)
    c = Compose(env, tmp_path)
    c("down", "-v", "--remove-orphans", timeout=180)  # what an interrupted run may have left
    try:
        yield c
    finally:
        print(c("logs", "--no-color", "--tail=60", timeout=60).stdout)  # shown when the test failed
        c("down", "-v", "--remove-orphans", timeout=180)


def test_compose_up_on_a_real_engine(compose: Compose) -> None:
    t0 = time.monotonic()
    # 1. up: build, control healthy, setup completed, lb loads the key through its grant
    compose.ok("up", "-d", "--build", timeout=600)
    t_up = time.monotonic() - t0
    assert compose.exit_code("setup") == 0
    wait_for("lb logs that it serves with the key", lambda: READY in compose.logs("lb"), timeout=90)

    # 2. the CA out of the data volume; HTTPS on the published 8443, verified, round robin
    ca = compose.copy_out("control", "/data/ca.pem")
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")

    def https() -> subprocess.CompletedProcess[str]:
        return curl("--cacert", str(ca), "https://localhost:8443/compose")

    seen: set[str] = set()
    for _ in range(12):
        done = https()
        assert done.returncode == 0, done.stderr
        assert "X-Forwarded-Proto=https" in done.stdout, done.stdout
        seen.add(done.stdout.split(":", 1)[0])
        if seen == BACKENDS:
            break
    assert seen == BACKENDS

    # 3. stop lb with the key loaded: it says it wipes it, and it did; start loads it again
    compose.ok("stop", "lb", timeout=90)
    log = compose.logs("lb")
    assert log.count(STOPPING) == 1 and log.count(WIPED) == 1, log[-3000:]
    assert log.index(STOPPING) < log.index(WIPED)
    assert compose.exit_code("lb") == 0
    assert https().returncode != 0  # nothing listens on 8443 any more
    compose.ok("start", "lb", timeout=90)
    wait_for("lb loads the key again", lambda: compose.logs("lb").count(READY) == 2, timeout=60)
    wait_for("HTTPS answers again", lambda: https().returncode == 0, timeout=20)

    # 4. revoke the grant with the AWS CLI against the published 4599
    credentials = compose.copy_out("control", "/data/credentials")
    profiles = configparser.ConfigParser()
    profiles.read(credentials)
    aws_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    aws_env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_CONFIG_FILE=os.devnull,
        AWS_DEFAULT_REGION=profiles["admin"].get("region", "us-east-1"),
    )
    cli = [shutil.which("aws") or "", "--profile", "admin", "--endpoint-url", "http://localhost:4599"]
    if not cli[0]:
        cli[0:1] = [sys.executable, "-m", "awscli"]

    def aws(*args: str) -> str:
        done = in_engine(*cli, *args, "--output", "json", env=aws_env)
        assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
        return done.stdout

    grants = json.loads(aws("kms", "list-grants", "--key-id", "alias/aws/acm"))["Grants"]
    assert len(grants) == 1, grants
    grant = grants[0]
    assert grant["Name"] == "IssuedThroughACM" and grant["GranteePrincipal"].endswith(":role/demo-lb"), grant
    aws("kms", "revoke-grant", "--key-id", grant["KeyId"], "--grant-id", grant["GrantId"])

    refused: list[str] = []

    def handshake_refused() -> bool:
        done = https()
        refused[:] = [done.stderr]
        return done.returncode != 0 and HANDSHAKE_REFUSED in done.stderr

    wait_for(f"the handshake is refused ({HANDSHAKE_REFUSED}); last: {refused}", handshake_refused, timeout=15)
    http = curl("-w", "\n%{http_code}", "http://localhost:8080/compose")
    assert http.returncode == 0, http.stderr
    body, _, status = http.stdout.rpartition("\n")
    assert status == "200" and body.split(":", 1)[0] in BACKENDS, http.stdout
    log = compose.logs("lb")
    assert log.count(WIPED) == 2 and log.count(STOPPING) == 1, log[-3000:]  # the revoke wiped it, not a stop

    # 5. stop lb: exit 0, its log says the key was wiped; down -v leaves nothing
    compose.ok("stop", "lb", timeout=90)
    log = compose.logs("lb")
    assert log.count(STOPPING) == 2, log[-3000:]
    assert compose.exit_code("lb") == 0
    compose.ok("down", "-v", timeout=180)
    assert compose.left() == ""
    print(f"compose end to end: up --build {t_up:.0f} s, all {time.monotonic() - t0:.0f} s")
