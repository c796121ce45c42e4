"""The control plane goes away: the data plane keeps serving with the key it has, reconnects with backoff,
resumes the event stream where it left off; with a key lease it fails closed instead."""

from __future__ import annotations

import time

import pytest
from stack import Stack, get, handshake_ok, wait_until

from lbproxy.control.dataplane import install_routes
from lbproxy.core.clock import SystemClock
from lbproxy.testing import ControlThread

pytestmark = pytest.mark.timeout(120)


def test_outage_keeps_serving_then_resumes_the_event_stream(stack: Stack) -> None:
    cert = stack.serve_https("outage-cert")
    ctx = cert.client_context()
    grant = next(g for g in stack.grants() if g["Name"] == "IssuedThroughACM")

    port = int(stack.control.url.rsplit(":", 1)[1])
    data_dir = stack.control.settings.data_dir
    stack.control.stop()
    for _ in range(5):  # no control plane: HTTPS keeps working with the key in memory
        assert get(f"https://localhost:{stack.https_port}/", ctx)[0] == 200
        time.sleep(0.3)
    stack.control = ControlThread(
        data_dir, clock=SystemClock(), validation_delay=0.0, port=port, installers=[install_routes]
    ).start()
    # Revoked while the data plane may still be reconnecting: it resumes from its last event id and acts.
    stack.control.client("kms").revoke_grant(KeyId=grant["KeyId"], GrantId=grant["GrantId"])
    wait_until(lambda: not handshake_ok(stack.https_port, ctx), timeout=20, interval=0.2)
    assert get(f"http://127.0.0.1:{stack.http_port}/")[0] == 200


def test_key_lease_fails_closed_without_the_control_plane(stack: Stack) -> None:
    cert = stack.serve_https("lease-cert", "--key-lease", "2")
    ctx = cert.client_context()
    assert handshake_ok(stack.https_port, ctx)
    port = int(stack.control.url.rsplit(":", 1)[1])
    data_dir = stack.control.settings.data_dir
    stack.control.stop()
    wait_until(lambda: not handshake_ok(stack.https_port, ctx), timeout=15, interval=0.3)
    assert get(f"http://127.0.0.1:{stack.http_port}/")[0] == 200  # plain HTTP keeps working
    # Contact again and the grant still holds: the key is loaded again.
    stack.control = ControlThread(
        data_dir, clock=SystemClock(), validation_delay=0.0, port=port, installers=[install_routes]
    ).start()
    wait_until(lambda: handshake_ok(stack.https_port, ctx), timeout=20, interval=0.3)
