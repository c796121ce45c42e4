"""Instance health: Lightsail's states and reason codes, and the checker that drives them.

- ``HealthTracker`` (pure): per instance, Lightsail's ``InstanceHealthState`` (``initial``, ``healthy``,
  ``unhealthy``, ``unused``, ``draining``) and ``InstanceHealthReason``
  (``Lb.RegistrationInProgress``, ``Lb.InitialHealthChecking``, ``Instance.ResponseCodeMismatch``,
  ``Instance.Timeout``, ``Instance.FailedHealthChecks``, ``Instance.NotRegistered``, ``Instance.NotInUse``,
  ``Instance.DeregistrationInProgress``, ``Instance.InvalidState``, ``Instance.IpUnusable``), moved by
  check results with ALB's thresholds: a new instance is ``initial`` until its first check, becomes
  ``healthy`` on its first success (``unhealthy`` after ``unhealthy_threshold`` failures); a healthy one
  turns ``unhealthy`` after ``unhealthy_threshold`` consecutive failures, an unhealthy one ``healthy``
  again after ``healthy_threshold`` consecutive successes. A check passes on status 200-399.
  ``snapshot()`` is the shape ``GetLoadBalancer``'s ``instanceHealthSummary`` reports.
- ``HealthChecker`` (I/O): one task per load balancer that checks every instance each interval (GET
  ``HealthCheckPath``, ``Connection: close``, bounded by the timeout) and calls ``on_change`` with the
  healthy names whenever that set changes. It runs in the supervisor (no key there), which pushes the
  set to its workers; tests run it next to an in-process ``Dataplane``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from lbproxy.contract.vocabulary import (
    FAILED_HEALTH_CHECKS,
    HEALTHY,
    INITIAL,
    INITIAL_HEALTH_CHECKING,
    IP_UNUSABLE,
    REGISTRATION_IN_PROGRESS,
    RESPONSE_CODE_MISMATCH,
    TIMEOUT,
    UNHEALTHY,
)
from lbproxy.proxy.spec import InstanceSpec, LoadBalancerSpec, ProxySettings

log = logging.getLogger("lbproxy.proxy")


@dataclasses.dataclass(slots=True)
class InstanceHealth:
    name: str
    state: str = INITIAL
    reason: str | None = REGISTRATION_IN_PROGRESS
    successes: int = 0
    failures: int = 0
    last_status: int | None = None


class HealthTracker:
    """The pure state machine: ``observe(name, ok, reason)`` after every check."""

    def __init__(self, healthy_threshold: int, unhealthy_threshold: int) -> None:
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self._health: dict[str, InstanceHealth] = {}

    def set_instances(self, names: Iterable[str]) -> None:
        wanted = list(names)
        self._health = {n: self._health.get(n) or InstanceHealth(n) for n in wanted}

    def begin(self, name: str) -> None:
        h = self._health.get(name)
        if h is not None and h.state == INITIAL and h.reason == REGISTRATION_IN_PROGRESS:
            h.reason = INITIAL_HEALTH_CHECKING

    def observe(self, name: str, ok: bool, reason: str | None = None, status: int | None = None) -> None:
        h = self._health.get(name)
        if h is None:
            return
        h.last_status = status
        if ok:
            h.successes += 1
            h.failures = 0
            if h.state == INITIAL or (h.state == UNHEALTHY and h.successes >= self.healthy_threshold):
                h.state, h.reason = HEALTHY, None
        else:
            h.failures += 1
            h.successes = 0
            if h.state in (HEALTHY, INITIAL) and h.failures >= self.unhealthy_threshold:
                h.state, h.reason = UNHEALTHY, reason or FAILED_HEALTH_CHECKS
            elif h.state == UNHEALTHY:
                h.reason = reason or FAILED_HEALTH_CHECKS

    def healthy(self) -> frozenset[str]:
        return frozenset(n for n, h in self._health.items() if h.state == HEALTHY)

    def get(self, name: str) -> InstanceHealth | None:
        return self._health.get(name)

    def snapshot(self) -> list[dict[str, Any]]:
        """Lightsail's ``InstanceHealthSummary`` list: ``instanceName``, ``instanceHealth``, reason."""
        return [
            {"instanceName": h.name, "instanceHealth": h.state, "instanceHealthReason": h.reason}
            for h in self._health.values()
        ]


async def check_once(spec: InstanceSpec, path: str, timeout: float) -> tuple[bool, str | None, int | None]:
    """One health check: (passed, failure reason, status code)."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(spec.host, spec.port)
            host = spec.host if spec.port == 80 else f"{spec.host}:{spec.port}"
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ELB-HealthChecker/2.0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            line = await reader.readline()
    except TimeoutError:
        return False, TIMEOUT, None
    except socket.gaierror:
        return False, IP_UNUSABLE, None
    except OSError:
        return False, FAILED_HEALTH_CHECKS, None
    finally:
        if writer is not None:
            writer.transport.abort()
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return False, FAILED_HEALTH_CHECKS, None
    status = int(parts[1])
    if 200 <= status < 400:
        return True, None, status
    return False, RESPONSE_CODE_MISMATCH, status


class HealthChecker:
    """Checks every instance each ``health_check_interval``; ``on_change(healthy names)`` on changes."""

    def __init__(
        self,
        spec: LoadBalancerSpec,
        settings: ProxySettings,
        on_change: Callable[[frozenset[str]], None],
    ) -> None:
        self._settings = settings
        self._spec = spec
        self._on_change = on_change
        self.tracker = HealthTracker(settings.healthy_threshold, settings.unhealthy_threshold)
        self.tracker.set_instances(i.name for i in spec.instances)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last: frozenset[str] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lbproxy-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def update(self, spec: LoadBalancerSpec) -> None:
        self._spec = spec
        self.tracker.set_instances(i.name for i in spec.instances)
        self._publish()
        self._wake.set()  # check new instances now

    def snapshot(self) -> list[dict[str, Any]]:
        return self.tracker.snapshot()

    def _publish(self) -> None:
        healthy = self.tracker.healthy()
        if healthy != self._last:
            self._last = healthy
            self._on_change(healthy)

    async def check_all(self) -> None:
        spec = self._spec
        s = self._settings
        for inst in spec.instances:
            self.tracker.begin(inst.name)
        results = await asyncio.gather(
            *(check_once(i, spec.health_check_path, s.health_check_timeout) for i in spec.instances)
        )
        if spec is not self._spec:  # reconfigured while checking: the next round counts
            return
        for inst, (ok, reason, status) in zip(spec.instances, results, strict=True):
            self.tracker.observe(inst.name, ok, reason, status)
        self._publish()

    async def _run(self) -> None:
        interval = self._settings.health_check_interval
        while True:
            started = time.monotonic()
            try:
                await self.check_all()
            except Exception:  # never let one bad round stop health checking
                log.exception("health check round failed")
            self._wake.clear()
            delay = max(0.0, interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
