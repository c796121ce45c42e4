"""``lbproxy demo`` as a user meets it: one subprocess, free ports, a tmp data dir.

- HTTPS round robin over web-1..web-3 with the printed ``curl --cacert`` line (no -k); Python's ssl
  module with the same CA when curl is missing.
- The printed ``aws kms revoke-grant`` line, run with the real AWS CLI (boto3 makes the same call when
  the CLI is missing): the next HTTPS handshake fails, plain HTTP still answers; re-attaching the
  certificate brings HTTPS back with a new grant.
- The dashboard in headless Chromium against this real stack: key state LOADED, three instances healthy;
  click Revoke on the grant: the real data plane reports the key WIPED. Screenshot
  ``test-artifacts/demo-dashboard.png``.
- SIGINT: exit 0 after saying the key was wiped; a port in use and ``--fresh`` on a foreign directory are
  refused with a clear message.

The tests share one demo (module fixture) and restore its HTTPS state when they change it.
"""

from __future__ import annotations

import configparser
import os
import re
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lbproxy.testing import free_ports, wait_until

LB = "demo-lb"
WIPED_SAYING = "key wiped from memory: the key-holding workers exited"

pytestmark = pytest.mark.timeout(90)


@dataclass
class RunningDemo:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    output: list[str] = field(default_factory=list)

    def read_until(self, marker: str, timeout: float) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            raw = self.proc.stdout.readline()
            if not raw:
                break
            self.output.append(raw.decode(errors="replace").rstrip("\n"))
            if marker in self.output[-1]:
                return
        raise AssertionError(f"no {marker!r} in time; output so far:\n" + "\n".join(self.output))

    def line_with(self, needle: str) -> str:
        """The printed line that starts with ``needle`` (the commands), else the first containing it."""
        lines = [line.strip() for line in self.output]
        return next((x for x in lines if x.startswith(needle)), None) or next(x for x in lines if needle in x)

    @property
    def ca(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['control']}"

    def client(self, service: str) -> Any:
        boto3 = pytest.importorskip("boto3")
        cp = configparser.ConfigParser()
        cp.read(self.data_dir / "credentials")
        admin = cp["admin"]
        return boto3.client(
            service,
            endpoint_url=self.control_url,
            region_name="us-east-1",
            aws_access_key_id=admin["aws_access_key_id"],
            aws_secret_access_key=admin["aws_secret_access_key"],
        )

    def https(self) -> str:
        """One HTTPS request the way the printed curl line makes it (curl when installed)."""
        if shutil.which("curl"):
            argv = shlex.split(self.line_with("curl --cacert"))
            done = subprocess.run([*argv, "-sS", "--max-time", "5"], capture_output=True, timeout=10)
            if done.returncode != 0:
                raise ConnectionError(done.stderr.decode().strip())
            return done.stdout.decode()
        ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(f"https://localhost:{self.ports['https']}/", context=ctx, timeout=5) as resp:
            return str(resp.read().decode())

    def https_fails(self) -> bool:
        try:
            self.https()
        except (ConnectionError, OSError, ssl.SSLError):
            return True
        return False

    def http(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['http']}/", timeout=5) as resp:
            return str(resp.read().decode())

    def reattach(self) -> None:
        """Back to HTTPS: attaching the certificate again creates a new grant; the data plane loads the key."""
        self.client("lightsail").attach_load_balancer_tls_certificate(loadBalancerName=LB, certificateName=f"{LB}-cert")
        wait_until("HTTPS after re-attaching", lambda: not self.https_fails(), timeout=15, interval=0.3)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_demo(data_dir: Path, *extra: str) -> RunningDemo:
    control, http, https, b1, b2, b3 = free_ports(6)
    env = {k: v for k, v in os.environ.items() if k != "LBPROXY_DATA_DIR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lbproxy", "demo", "--data-dir", str(data_dir),
         "--control-listen", f"127.0.0.1:{control}", "--http-listen", f"127.0.0.1:{http}",
         "--https-listen", f"127.0.0.1:{https}", "--backend-ports", f"{b1},{b2},{b3}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, bufsize=0,  # select() sees every line
        # As a script's `lbproxy demo &` or `nohup` starts it: SIGINT ignored, inherited by the demo. Ctrl-C
        # (``interrupt``) must stop it all the same.
        preexec_fn=_ignore_sigint,
    )  # fmt: skip
    demo = RunningDemo(proc, data_dir, {"control": control, "http": http, "https": https})
    try:
        demo.read_until("Ctrl-C stops everything", timeout=40)
    except BaseException:
        interrupt(demo)  # never leave a half-started demo (and its ports) behind
        raise
    return demo


def interrupt(demo: RunningDemo) -> int:
    if demo.proc.poll() is None:
        demo.proc.send_signal(signal.SIGINT)
    try:
        code = demo.proc.wait(40)
    except subprocess.TimeoutExpired:
        demo.proc.kill()
        code = demo.proc.wait(5)
    stdout = demo.proc.stdout
    if stdout is not None and not stdout.closed:
        demo.output += stdout.read().decode(errors="replace").splitlines()
        stdout.close()
    return code


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    d = start_demo(tmp_path_factory.mktemp("demo") / "data")
    try:
        yield d
    finally:
        interrupt(d)


def test_https_round_robin_with_the_printed_curl_line(demo: RunningDemo) -> None:
    assert "--cacert" in demo.line_with("curl --cacert") and " -k" not in demo.line_with("curl --cacert")
    seen = {demo.https().split(":", 1)[0] for _ in range(6)}
    assert seen == {"web-1", "web-2", "web-3"}
    assert "X-Forwarded-Proto=https" in demo.https()
    text = "\n".join(demo.output)
    for said in ("key sealed", "EncryptionContextEquals", "IssuedThroughACM", "no file written", "HTTPS listening"):
        assert said in text, said


def test_the_printed_revoke_command_wipes_the_key(demo: RunningDemo) -> None:
    line = demo.line_with("kms revoke-grant")
    grants = demo.client("kms").list_grants(KeyId="alias/aws/acm")["Grants"]
    assert [g["GrantId"] for g in grants] == [re.search(r"--grant-id (\S+)", line).group(1)]  # type: ignore[union-attr]
    if shutil.which("aws"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        done = subprocess.run(["bash", "-c", line], capture_output=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr.decode()
    else:
        # The AWS CLI is not installed (pip install awscli): the same call through boto3.
        g = grants[0]
        demo.client("kms").revoke_grant(KeyId=g["KeyId"], GrantId=g["GrantId"])
    wait_until("the next HTTPS request to fail", demo.https_fails, timeout=5)
    assert demo.http().startswith("web-")  # plain HTTP keeps answering
    # The data plane says what happened in words, as an expected outcome (no ERROR, no exception name).
    lb_log = demo.data_dir / "logs" / "lb.log"
    wait_until("the revocation in the load balancer's log", lambda: "grant revoked" in lb_log.read_text(), timeout=5)
    said = [line for line in lb_log.read_text().splitlines() if "grant revoked" in line or " ERROR " in line]
    assert not [line for line in said if " ERROR " in line], said
    demo.reattach()


def test_the_dashboard_shows_the_real_data_plane_wipe_the_key(demo: RunningDemo, tmp_path: Path) -> None:
    from browserkit import ARTIFACTS, chromium, click, instance_health, key_state, wait_for

    url = demo.line_with("Dashboard").split(": ", 1)[1]
    kms = demo.client("kms")
    wait_until("an active grant", lambda: kms.list_grants(KeyId="alias/aws/acm")["Grants"])
    grant_id = kms.list_grants(KeyId="alias/aws/acm")["Grants"][0]["GrantId"]
    with chromium(tmp_path / "chromium-profile") as browser:
        from selenium.webdriver.common.by import By

        browser.get(url)
        row = f'tr[data-grant-id="{grant_id}"]'
        wait_for("the grant", lambda: browser.find_elements(By.CSS_SELECTOR, row), timeout=10)
        wait_for("key state LOADED", lambda: key_state(browser, LB) == "LOADED", timeout=10)

        def all_healthy() -> bool:
            health = instance_health(browser, LB)
            return set(health) == {"web-1", "web-2", "web-3"} and all(
                "healthy" in t and "unhealthy" not in t for t in health.values()
            )

        wait_for("three healthy instances", all_healthy, timeout=10)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "demo-dashboard-loaded.png"))

        click(browser, f'{row} button[data-action="revoke"]', "the revoke button")
        wait_for("the grant to disappear", lambda: not browser.find_elements(By.CSS_SELECTOR, row))
        # No stand-in here: the real data plane saw grant.revoked, its key-holding workers exited, and its
        # next report (every 1 s) says so.
        wait_for("key state WIPED", lambda: key_state(browser, LB) == "WIPED", timeout=6)
        assert demo.https_fails()
        browser.save_screenshot(str(ARTIFACTS / "demo-dashboard.png"))
    demo.reattach()


def test_a_port_in_use_is_refused_with_the_flag_named(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "lbproxy", "demo", "--data-dir", str(tmp_path / "d"),
             "--https-listen", f"127.0.0.1:{port}"],
            capture_output=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    err = done.stderr.decode()
    assert f"127.0.0.1:{port} (--https-listen) is already in use" in err, err
    assert not (tmp_path / "d").exists()  # nothing started, nothing written


def test_fresh_refuses_a_directory_lbproxy_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    ports = free_ports(6)
    done = subprocess.run(
        [sys.executable, "-m", "lbproxy", "demo", "--fresh", "--data-dir", str(tmp_path),
         "--control-listen", f"127.0.0.1:{ports[0]}", "--http-listen", f"127.0.0.1:{ports[1]}",
         "--https-listen", f"127.0.0.1:{ports[2]}", "--backend-ports", ",".join(map(str, ports[3:]))],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "does not look like an lbproxy data dir" in done.stderr.decode()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_ctrl_c_stops_in_order_and_says_the_key_was_wiped(demo: RunningDemo) -> None:
    assert interrupt(demo) == 0
    tail = "\n".join(demo.output[-6:])
    assert WIPED_SAYING in tail, tail
    assert tail.index("load balancer stopped") < tail.index("backends and control plane stopped")
