"""Fixtures: a real control plane with the dashboard installed, and a small HTTP client for its API."""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lbproxy.control import dashboard
from lbproxy.control.plane import ControlPlane
from lbproxy.core.clock import ManualClock
from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread, wait_until


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class Dash:
    """The control plane thread plus the ``Dashboard`` its installer created."""

    def __init__(self, ct: ControlThread, holder: dict[str, dashboard.Dashboard]) -> None:
        self.ct = ct
        self._holder = holder

    @property
    def dashboard(self) -> dashboard.Dashboard:
        return self._holder["dashboard"]

    @property
    def url(self) -> str:
        assert self.ct.plane is not None
        return dashboard.dashboard_url(self.ct.plane, self.ct.url)

    @property
    def token(self) -> str:
        return self.dashboard.token

    def role(self, name: str) -> Principal:
        plane = self.ct.plane
        assert plane is not None
        role: Principal = self.ct.call(lambda: plane.principals.ensure_role(name))
        return role

    def report_key_state(self, lb: str, state: str, **kw: Any) -> None:
        """Stand-in for the data plane's key-state report (``KeyStates.report``)."""
        plane = self.ct.plane
        assert plane is not None
        self.ct.call(lambda: self.dashboard.reports.report(lb, state, since=plane.clock.time(), **kw))

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = "", headers: dict[str, str] | None = None
    ) -> Reply:
        hdrs = dict(headers or {})
        if token == "":
            token = self.token
        if token is not None:
            hdrs[dashboard.TOKEN_HEADER] = token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.ct.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw, status, rh = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, rh = exc.read(), exc.code, dict(exc.headers)
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Reply(status, rh, parsed)

    def set_up_demo(self, lb: str = "demo-lb") -> tuple[str, str]:
        """The demo's setup through the public API: load balancer, three instances, certificate attached (which
        makes the grant ``IssuedThroughACM``); then the data plane's first report. Returns (key id, grant id)."""
        plane = self.ct.plane
        assert plane is not None
        if "Lightsail_20161128" not in plane.services:  # a control plane with only KMS: a grant for a role
            kms = self.ct.client("kms")
            key_id = kms.create_key(Description="demo")["KeyMetadata"]["KeyId"]
            grant_id = kms.create_grant(
                KeyId=key_id, GranteePrincipal=self.role(lb).arn, Operations=["Decrypt", "DescribeKey"], Name="demo"
            )["GrantId"]
            self.report_key_state(lb, "LOADED", fingerprint="SHA256:" + "ab" * 32)
            return key_id, grant_id

        ls = self.ct.client("lightsail")
        ls.create_load_balancer(loadBalancerName=lb, instancePort=80, healthCheckPath="/health")
        for i in (1, 2, 3):
            self.ct.call(functools.partial(plane.lightsail.register_instance, f"web-{i}", f"127.0.0.1:{8000 + i}"))
        ls.attach_instances_to_load_balancer(loadBalancerName=lb, instanceNames=["web-1", "web-2", "web-3"])
        ls.create_load_balancer_tls_certificate(
            loadBalancerName=lb, certificateName="demo-cert", certificateDomainName="demo.lbproxy.test"
        )
        wait_until(
            "the certificate to be issued",
            lambda: (
                ls.get_load_balancer_tls_certificates(loadBalancerName=lb)["tlsCertificates"][0]["status"] == "ISSUED"
            ),
        )
        ls.attach_load_balancer_tls_certificate(loadBalancerName=lb, certificateName="demo-cert")
        kms = self.ct.client("kms")
        key_id = kms.describe_key(KeyId="alias/aws/acm")["KeyMetadata"]["KeyId"]
        [grant] = kms.list_grants(KeyId=key_id)["Grants"]

        report = {
            "instances": [
                {"name": "web-1", "state": "healthy"},
                {"name": "web-2", "state": "healthy"},
                {"name": "web-3", "state": "unhealthy", "reasonCode": "Instance.ResponseCodeMismatch"},
            ],
            "metrics": {
                "RequestCount": 60,
                "HTTPCode_Instance_2XX_Count": 52,
                "HTTPCode_Instance_4XX_Count": 5,
                "HTTPCode_LB_5XX_Count": 3,
                "HealthyHostCount": 2,
                "UnhealthyHostCount": 1,
            },
        }
        for minute in range(4):  # one report a minute, for the chart
            if minute:
                self.ct.clock.advance(seconds=60)  # type: ignore[attr-defined]
            self.ct.call(lambda: plane.lightsail.report(plane.admin, lb, report))
        self.report_key_state(lb, "LOADED", fingerprint="SHA256:" + "ab" * 32, certificate="demo-cert")
        return key_id, grant["GrantId"]

    def state(self) -> dict[str, Any]:
        reply = self.request("GET", "/dashboard/api/state")
        assert reply.status == 200, reply.body
        body: dict[str, Any] = reply.body
        return body

    def call(self, target: str, params: dict[str, Any]) -> Reply:
        return self.request("POST", "/dashboard/api/call", {"target": target, "params": params})


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dash]:
    holder: dict[str, dashboard.Dashboard] = {}

    def install(app: web.Application, plane: ControlPlane) -> None:
        dashboard.install(app, plane)
        holder["dashboard"] = app[dashboard.DASHBOARD]

    ct = ControlThread(tmp_path / "data", clock=ManualClock(), installers=[install], validation_delay=0.0).start()
    try:
        yield Dash(ct, holder)
    finally:
        ct.stop()
