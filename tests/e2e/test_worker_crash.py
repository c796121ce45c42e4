"""``kill -9`` of ``lbproxy lb``'s key-holding worker, end to end: HTTPS answers again within 1 s (the
replacement decrypts the key through the grant again, a second ``Decrypt`` in the audit trail), and the
control plane and its dashboard learn from the data plane's report how many workers serve, how many exited
unasked, and why it is degraded while a crash loop backs off (never ``LOADED`` with no live key holder)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
from stack import Stack, handshake_ok, wait_until

pytestmark = pytest.mark.timeout(120)


def _key_state(stack: Stack) -> dict[str, Any]:
    plane = stack.control.plane
    assert plane is not None
    return plane.lightsail.key_states().get(stack.lb_name) or {}


def _decrypts(stack: Stack) -> int:
    audit = (stack.control.settings.data_dir / "audit.jsonl").read_text()
    return sum(1 for line in audit.splitlines() if json.loads(line).get("eventName") == "Decrypt")


def test_worker_killed_is_replaced_and_reported(stack: Stack) -> None:
    cert = stack.serve_https("crash-cert")
    ctx = cert.client_context()
    [pid] = stack.ready["workers"]
    decrypts = _decrypts(stack)
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    wait_until(lambda: handshake_ok(stack.https_port, ctx), timeout=5, interval=0.01)
    took = time.monotonic() - start
    print(f"\nHTTPS answered again {took:.2f} s after kill -9 of the only worker")
    # (1 s is the bar, and tests/proxy/test_worker_restarts.py holds it; here the replacement also fetches the
    # key from a control plane that shares the machine with the rest of the suite: a loaded CI gets more room.)
    assert took < 2.5, f"HTTPS answered again only after {took:.2f}s"
    # The replacement loaded the key through the grant (another Decrypt), and the report says what happened.
    wait_until(lambda: _decrypts(stack) > decrypts, timeout=5)
    wait_until(lambda: _key_state(stack).get("restarts") == 1 and _key_state(stack).get("degraded") is None)
    ks = _key_state(stack)
    assert ks["state"] == "loaded" and ks["workers"] == ks["workersExpected"] == 1
    assert f"(pid {pid})" in ks["lastExit"] and "SIGKILL" in ks["lastExit"]

    # A crash loop: the next failures wait (0.5 s, then 1 s); meanwhile the data plane says it is degraded,
    # and never that a key is loaded when no live process holds it.
    seen: list[dict[str, Any]] = []
    for _ in range(2):
        wait_until(lambda: len(_lb_pids(stack)) == 1, timeout=10)
        os.kill(_lb_pids(stack)[0], signal.SIGKILL)
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            seen.append(_key_state(stack))
            time.sleep(0.02)
    degraded = [s for s in seen if s.get("degraded")]
    assert degraded, seen[-3:]
    assert all(s["state"] != "loaded" for s in degraded if s["workers"] == 0), degraded
    assert any("0 of 1 workers serving" in s["degraded"] and "next attempt in" in s["degraded"] for s in degraded)
    # The dashboard shows it (the same report, through its state API).
    lb = next(lb for lb in stack.dashboard_state()["loadBalancers"] if lb["name"] == stack.lb_name)
    assert lb["keyState"]["restarts"] >= 2
    # And it heals.
    wait_until(lambda: _key_state(stack).get("degraded") is None and _key_state(stack).get("state") == "loaded",
               timeout=15)  # fmt: skip
    assert _key_state(stack)["restarts"] == 3
    assert handshake_ok(stack.https_port, ctx)
    shown = next(lb for lb in stack.dashboard_state()["loadBalancers"] if lb["name"] == stack.lb_name)["keyState"]
    assert shown["state"] == "LOADED" and shown["degraded"] is None and shown["workers"] == 1


def _lb_pids(stack: Stack) -> list[int]:
    """The worker processes of ``lbproxy lb`` now (its children, read from /proc)."""
    assert stack.lb is not None
    out: list[int] = []
    for task in os.listdir(f"/proc/{stack.lb.pid}/task"):
        with open(f"/proc/{stack.lb.pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out
