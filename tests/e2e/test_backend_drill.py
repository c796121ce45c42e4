"""The demo backend's drill switch (``POST /health/fail`` / ``/health/ok``) answers only callers that reach the
backend directly: through the load balancer (which stamps ``X-Forwarded-For`` on everything) it is 403."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from stack import Stack, get

pytestmark = pytest.mark.timeout(120)


def post(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=b"", method="POST", headers={"Connection": "close", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_drill_switch_is_not_reachable_through_the_load_balancer(stack: Stack) -> None:
    stack.start_backends("web-1")
    stack.create_load_balancer()
    stack.start_lb()
    backend = f"http://127.0.0.1:{stack.backends['web-1']}"
    through_lb = f"http://127.0.0.1:{stack.http_port}"

    for state in ("fail", "ok"):
        status, body = post(f"{through_lb}/health/{state}")
        assert status == 403, (state, status, body)
    assert get(f"{backend}/health")[0] == 200  # still healthy: the request never flipped it
    # Other paths still pass through, POST included.
    status, body = post(f"{through_lb}/health/other")
    assert status == 200 and "web-1" in body

    # Directly (a drill on the instance itself), it works; a forged X-Forwarded-For is refused as well.
    assert post(f"{backend}/health/fail", {"X-Forwarded-For": "127.0.0.1"})[0] == 403
    assert post(f"{backend}/health/fail")[0] == 200
    assert get(f"{backend}/health")[0] == 503
    assert post(f"{backend}/health/ok")[0] == 200
    assert get(f"{backend}/health")[0] == 200
    assert stack.stop_lb() == 0
