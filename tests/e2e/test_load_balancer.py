"""The whole key flow over real sockets: control plane -> grant -> ``lbproxy lb`` decrypts -> HTTPS ->
revoke -> handshakes refused, plain HTTP still answers, and no process of the data plane holds the key."""

from __future__ import annotations

import os
import socket
import ssl
import time

import pytest
from stack import Stack, get, wait_until

from lbproxy.memscan import needles, scan_tree

pytestmark = pytest.mark.timeout(120)


def handshake_fails(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s, ctx.wrap_socket(s, server_hostname="localhost"):
            return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def test_https_through_the_grant_then_revocation_wipes_the_key(stack: Stack) -> None:
    stack.start_backends("web-1", "web-2")
    stack.create_load_balancer()
    cert = stack.import_certificate("e2e-cert")
    stack.attach(cert)
    grants = [g for g in stack.grants() if g["Name"] == "IssuedThroughACM"]
    assert len(grants) == 1
    ready = stack.start_lb("--workers", "2")
    assert ready["key"] == "loaded"
    ctx = cert.client_context()

    seen = set()
    for _ in range(6):
        status, body, _ = get(f"https://localhost:{stack.https_port}/hello?x=1", ctx)
        assert status == 200
        assert "X-Forwarded-Proto=https" in body
        seen.add(body.split(":")[0])
    assert seen == {"web-1", "web-2"}  # round robin across both instances
    status, body, _ = get(f"http://127.0.0.1:{stack.http_port}/plain")
    assert status == 200 and "X-Forwarded-Proto=http" in body

    patterns = needles(cert.key_pem)
    if os.geteuid() == 0:
        before = scan_tree(stack.lb.pid, patterns)  # type: ignore[union-attr]
        assert not before[stack.lb.pid], "the supervisor must never hold key material"  # type: ignore[union-attr]
        assert any(found for found in before.values()), "the scan must find the live key before revocation"

    t0 = time.monotonic()
    stack.control.client("kms").revoke_grant(KeyId=grants[0]["KeyId"], GrantId=grants[0]["GrantId"])
    wait_until(lambda: handshake_fails(stack.https_port, ctx), timeout=5)
    assert time.monotonic() - t0 < 3.0
    status, body, _ = get(f"http://127.0.0.1:{stack.http_port}/still-here")
    assert status == 200

    if os.geteuid() == 0:
        def clean() -> bool:
            return not any(scan_tree(stack.lb.pid, patterns).values())  # type: ignore[union-attr]

        wait_until(clean, timeout=10, interval=0.5)

    # Health and metrics reached the control plane through the data plane's reports.
    ls = stack.control.client("lightsail")

    def healthy() -> bool:
        lb = ls.get_load_balancer(loadBalancerName=stack.lb_name)["loadBalancer"]
        return all(h["instanceHealth"] == "healthy" for h in lb["instanceHealthSummary"])

    wait_until(healthy, timeout=10)
    assert stack.stop_lb() == 0


def test_shutdown_wipes_and_exits_cleanly(stack: Stack) -> None:
    stack.start_backends("web-1")
    stack.create_load_balancer()
    cert = stack.import_certificate("c1")
    stack.attach(cert)
    stack.start_lb()
    assert get(f"https://localhost:{stack.https_port}/", cert.client_context())[0] == 200
    assert stack.stop_lb() == 0


def test_a_load_balancer_without_certificate_serves_http_only(stack: Stack) -> None:
    stack.start_backends("web-1")
    stack.create_load_balancer()
    ready = stack.start_lb()
    assert ready["key"] == "none"
    assert get(f"http://127.0.0.1:{stack.http_port}/")[0] == 200
    assert handshake_fails(stack.https_port, ssl.create_default_context())
