"""``ipAddressType`` end to end: a load balancer is dual-stack by default (as Lightsail's), so ``lbproxy lb``
also serves the same ports on ``[::1]``; ``SetIpAddressType ipv4`` through the Lightsail API makes it stop,
``dualstack`` brings IPv6 back. Checked with ``curl -6``/``-4``, X-Forwarded-For carrying the IPv6 client."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from stack import Stack, wait_until

pytestmark = pytest.mark.timeout(120)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _curl(family: str, port: int, cacert: str) -> subprocess.CompletedProcess[str]:
    host = "::1" if family == "-6" else "127.0.0.1"
    argv = ["curl", family, "-sS", "--max-time", "5", "--cacert", cacert, "--resolve", f"localhost:{port}:{host}",
            f"https://localhost:{port}/"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=15)


def test_set_ip_address_type_through_the_api(stack: Stack) -> None:
    if not _ipv6_loopback() or shutil.which("curl") is None:
        pytest.skip("needs ::1 and curl")
    cert = stack.serve_https("dual-cert")
    cacert = stack.tmp / "dual-ca.pem"
    cert.ca.cert_pem.write_to_path(str(cacert))
    ls = stack.control.client("lightsail")
    assert ls.get_load_balancer(loadBalancerName=stack.lb_name)["loadBalancer"]["ipAddressType"] == "dualstack"
    v6 = _curl("-6", stack.https_port, str(cacert))
    assert v6.returncode == 0 and "X-Forwarded-For=::1" in v6.stdout, (v6.stdout, v6.stderr)
    # The data plane reports where it really listens (the dashboard shows it instead of Lightsail's 443).
    wait_until(lambda: f"https://[::1]:{stack.https_port}" in _listeners(stack), timeout=10)
    assert f"https://127.0.0.1:{stack.https_port}" in _listeners(stack)

    ls.set_ip_address_type(resourceType="LoadBalancer", resourceName=stack.lb_name, ipAddressType="ipv4")
    wait_until(lambda: _curl("-6", stack.https_port, str(cacert)).returncode != 0, timeout=20, interval=0.3)
    wait_until(lambda: f"https://[::1]:{stack.https_port}" not in _listeners(stack), timeout=10)
    assert _curl("-4", stack.https_port, str(cacert)).returncode == 0
    assert ls.get_load_balancer(loadBalancerName=stack.lb_name)["loadBalancer"]["ipAddressType"] == "ipv4"

    ls.set_ip_address_type(resourceType="LoadBalancer", resourceName=stack.lb_name, ipAddressType="dualstack")
    wait_until(lambda: _curl("-6", stack.https_port, str(cacert)).returncode == 0, timeout=20, interval=0.3)
    time.sleep(0.2)
    assert _curl("-4", stack.https_port, str(cacert)).returncode == 0


def _listeners(stack: Stack) -> list[str]:
    plane = stack.control.plane
    assert plane is not None
    return list((plane.lightsail.key_states().get(stack.lb_name) or {}).get("listeners") or [])
