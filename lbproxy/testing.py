"""Helpers for running a real control plane in-process (tests, drills, benchmarks).

``ControlThread`` runs ``ControlServer`` on its own event loop in a background thread, so synchronous
clients (boto3, the AWS CLI) can drive it over a real socket on 127.0.0.1 while the test holds the
``ControlPlane`` and its injected clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lbproxy.config import ControlSettings
from lbproxy.control.app import ControlServer, RouteInstaller
from lbproxy.control.plane import ControlPlane
from lbproxy.core.clock import Clock, ManualClock
from lbproxy.core.principals import Principal


class ControlThread:
    def __init__(
        self,
        data_dir: Path,
        clock: Clock | None = None,
        *,
        installers: list[RouteInstaller] | None = None,
        **settings: Any,
    ) -> None:
        self.clock = clock or ManualClock()
        self.installers = installers
        settings.setdefault("port", 0)
        settings.setdefault("sweep_interval", 0.05)
        self.settings = ControlSettings(data_dir=data_dir, **settings)
        self.plane: ControlPlane | None = None
        self.server: ControlServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="control-plane", daemon=True)

    def start(self) -> ControlThread:
        self._thread.start()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self.plane = ControlPlane(self.settings, clock=self.clock)
        self.server = ControlServer(self.plane, installers=self.installers)
        await self.server.start()

    def call(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run ``fn`` (sync or async) on the control plane's loop and return its result."""

        async def run() -> Any:
            out = fn()
            if asyncio.iscoroutine(out):
                out = await out
            return out

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def admin(self) -> Principal:
        assert self.plane is not None
        return self.plane.admin

    def client(self, service: str, principal: Principal | None = None, **kw: Any) -> Any:
        import boto3
        from botocore.config import Config

        p = principal or self.admin
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.settings.region,
            aws_access_key_id=p.access_key_id,
            aws_secret_access_key=p.secret_access_key,
            config=Config(retries={"max_attempts": 1}, **kw),
        )

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # (stopped already)

        async def _stop() -> None:
            if self.server is not None:
                await self.server.stop()
            if self.plane is not None:
                self.plane.close()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            self.call(_stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def read_events(
    url: str, principal: Principal, after: int | None = None, want: int = 1, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Read up to ``want`` events from ``GET /events`` (SigV4 as ``principal``), resuming after ``after``.

    Each event: ``{"id", "type", "data"}`` (``data`` as sent: id, time, type, detail) and ``"detail"``."""
    import json
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    req = AWSRequest(method="GET", url=url + "/events", headers=headers)
    SigV4Auth(Credentials(principal.access_key_id, principal.secret_access_key), "lbproxy", "us-east-1").add_auth(req)
    prepared = req.prepare()
    out: list[dict[str, Any]] = []
    request = urllib.request.Request(prepared.url, headers=dict(prepared.headers))
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if not resp.headers["Content-Type"].startswith("text/event-stream"):
            raise AssertionError(f"not an event stream: {resp.headers['Content-Type']}")
        event: dict[str, Any] = {}
        try:
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    event["id"] = int(line[4:])
                elif line.startswith("event: "):
                    event["type"] = line[7:]
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                    event["detail"] = event["data"].get("detail", {})
                elif line == "" and event:
                    out.append(event)
                    event = {}
                    if len(out) >= want:
                        break
        except TimeoutError:
            pass
    return out


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what``."""
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
