"""Helpers for the Lightsail tests: ``LightsailControl`` (a control plane with the data-plane routes) and
SigV4-signed calls (signing name ``lbproxy``) to lbproxy's own endpoints and its event stream."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lbproxy.control.app import ControlServer
from lbproxy.control.dataplane import install_routes
from lbproxy.control.plane import ControlPlane
from lbproxy.core.clock import ManualClock
from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread, read_events  # noqa: F401 (re-exported for the tests)

VALIDATION_DELAY = 5.0
INSTANCES_TOML = """
[instances.web-1]
address = "127.0.0.1:8001"

[instances.web-2]
address = "127.0.0.1:8002"

[instances.web-3]
address = "10.0.0.3"
"""


class LightsailControl(ControlThread):
    """``ControlThread`` with ``install_routes`` (the data-plane contract and the lbproxy extensions)."""

    async def _start(self) -> None:
        self.plane = ControlPlane(self.settings, clock=self.clock)
        self.server = ControlServer(self.plane, installers=[install_routes])
        await self.server.start()

    def issue_pending(self) -> None:
        """Move the injected clock past validation and run the sweep: PENDING_VALIDATION -> ISSUED."""
        assert isinstance(self.clock, ManualClock)
        self.clock.advance(seconds=VALIDATION_DELAY + 1)
        self.call(self.plane.tick)  # type: ignore[union-attr]

    def principal(self, name: str) -> Principal:
        p = self.call(lambda: self.plane.principals.get(name))  # type: ignore[union-attr]
        assert p is not None, name
        return p  # type: ignore[no-any-return]


def signed_call(
    url: str, principal: Principal, method: str, path: str, payload: Any = None
) -> tuple[int, dict[str, Any]]:
    """One SigV4-signed (service ``lbproxy``) JSON call; returns (status, parsed body)."""
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    req = AWSRequest(method=method, url=url + path, data=body, headers=headers)
    SigV4Auth(Credentials(principal.access_key_id, principal.secret_access_key), "lbproxy", "us-east-1").add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=body or None, headers=dict(p.headers), method=method)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
