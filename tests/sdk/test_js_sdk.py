"""lbproxy driven by a client nobody here wrote: the AWS SDK for JavaScript v3 (``lbproxy_js_sdk.mjs``).

The SDK's packages are pinned in ``package.json`` / ``package-lock.json`` and installed with ``npm ci`` into
``tests/sdk/node_modules`` (gitignored; reinstalled when the lock file changes). Without node or npm the test is
skipped and says why, except in CI (``CI=true``), where it must run: a missing node or a failed install fails.
The script runs against a real control plane on 127.0.0.1 whose clock is the real one, with short delays, so it
polls ``GetOperation`` through ``Started`` to ``Succeeded`` as Terraform does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from lbproxy.core.clock import SystemClock
from lbproxy.testing import ControlThread

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "lbproxy_js_sdk.mjs"
LOCK = HERE / "package-lock.json"
STAMP = HERE / "node_modules" / ".lbproxy-lock-sha256"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI must run the JavaScript SDK test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """``npm ci`` once per lock file (the SDK as pinned), or the reason it cannot run here."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable(f"node and npm are needed for the JavaScript SDK test (node: {node}, npm: {npm})")
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not (STAMP.exists() and STAMP.read_text() == digest):
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            _unavailable("npm ci did not finish within 300 s")
        if done.returncode != 0:
            _unavailable(f"npm ci failed (is the npm registry reachable?): {done.stderr.strip()[-2000:]}")
        STAMP.write_text(digest)
    return HERE / "node_modules"


@pytest.fixture
def live_control(tmp_path: Path) -> Iterator[ControlThread]:
    """A control plane on the real clock with short delays (the script polls; nothing moves a clock for it)."""
    instances = tmp_path / "instances.toml"
    instances.write_text('[instances.web-1]\naddress = "127.0.0.1:9"\n')
    ct = ControlThread(
        tmp_path / "data",
        clock=SystemClock(),
        instances_file=instances,
        validation_delay=0.3,
        lb_provisioning_delay=0.5,
        lb_operation_delay=0.3,
    )
    ct.start()
    try:
        yield ct
    finally:
        ct.stop()


def test_the_javascript_sdk_drives_lightsail_kms_and_acm(node_modules: Path, live_control: ControlThread) -> None:
    node = shutil.which("node")
    assert node is not None
    admin = live_control.admin
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(HERE)),
        "LBPROXY_ENDPOINT": live_control.url,
        "AWS_ACCESS_KEY_ID": admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
        "AWS_REGION": "us-east-1",
    }
    done = subprocess.run([node, str(SCRIPT)], cwd=HERE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # It waited through Started to Succeeded, as Terraform's waitOperation does.
    assert "CreateLoadBalancer:Started" in summary["polls"] and "CreateLoadBalancer:Succeeded" in summary["polls"]
    gone = summary["errors"]["GetLoadBalancer after DeleteLoadBalancer"]
    assert (gone["name"], gone["code"], gone["status"]) == ("NotFoundException", "NotFoundException", 400)
    assert summary["errors"]["TagResource on a certificate"]["name"] == "InvalidInputException"
    assert summary["acmKey"] == "AWS" and summary["kmsKeys"] >= 1 and summary["ipAddressType"] == "ipv4"
