"""``lbproxy control`` and ``lbproxy audit`` as a user runs them: a subprocess, the real AWS CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def start_control(data_dir: Path, listen: str = "127.0.0.1:0") -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lbproxy", "control", "--listen", listen, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line + (proc.stderr.read() if proc.stderr else "")
    url = line.split("listening on ")[1].split()[0]
    return proc, url


def test_control_process_with_the_aws_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, url = start_control(data)
    try:
        creds = data / "credentials"
        assert creds.stat().st_mode & 0o777 == 0o600
        assert "[admin]" in creds.read_text()
        aws = shutil.which("aws")
        if aws is None:
            pytest.skip("the AWS CLI is not installed (pip install awscli)")
        env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": os.devnull}
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        out = subprocess.run(
            [aws, "--profile", "admin", "--endpoint-url", url, "kms", "list-keys"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert len(json.loads(out.stdout)["Keys"]) == 1  # aws/acm
        out = subprocess.run(
            [aws, "--profile", "admin", "--endpoint-url", url, "kms", "describe-key", "--key-id", "alias/nope"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0 and "NotFoundException" in out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0

    audit = subprocess.run(
        [sys.executable, "-m", "lbproxy", "audit", "--data-dir", str(data)], capture_output=True, text=True, timeout=30
    )
    records = [json.loads(x) for x in audit.stdout.splitlines()]
    assert [r["eventName"] for r in records] == ["ListKeys", "DescribeKey"]
    assert records[1]["errorCode"] == "NotFoundException"


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    proc, url = start_control(tmp_path / "a")
    try:
        port = url.rsplit(":", 1)[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "lbproxy",
                "control",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(tmp_path / "b"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 2 and "cannot listen on" in out.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_bad_listen_value_names_the_flag(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lbproxy", "control", "--listen", "nope", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "invalid --listen: 'nope'" in out.stderr


def test_version_and_a_help_for_users() -> None:
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", "lbproxy", "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == f"lbproxy {version('lbproxy')}"
    helped = subprocess.run([sys.executable, "-m", "lbproxy", "--help"], capture_output=True, text=True, timeout=30)
    assert "Lightsail load balancer" in helped.stdout and "lbproxy demo" in helped.stdout
    assert "argparse" not in helped.stdout


def test_a_control_plane_on_every_interface_prints_a_dashboard_url_the_host_can_open(tmp_path: Path) -> None:
    """As in the compose file (``--listen 0.0.0.0:4599``): the printed URL names localhost, not 0.0.0.0."""
    proc, url = start_control(tmp_path / "data", listen="0.0.0.0:0")
    try:
        assert proc.stdout is not None
        dashboard = proc.stdout.readline()
        port = url.rsplit(":", 1)[1]
        assert dashboard.startswith(f"dashboard: http://localhost:{port}/?token="), dashboard
        assert "0.0.0.0" not in dashboard
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
