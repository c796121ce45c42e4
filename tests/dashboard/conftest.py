"""Fixtures: a real control plane with the dashboard and the data-plane routes installed, a small HTTP client for
the dashboard's API, and a stand-in data plane that talks to the control plane as ``lbproxy lb`` does (signed as
its load balancer's own principal, through ``POST /dataplane/v1/load-balancers/NAME/report``)."""

from __future__ import annotations

import functools
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.credentials import ReadOnlyCredentials
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lbproxy.contract.dataplane import DataPlaneConfig, DataPlaneReport, InstanceHealthReport, KeyStateReport
from lbproxy.control import dashboard
from lbproxy.control.dataplane import DATAPLANE_PREFIX, install_routes
from lbproxy.control.plane import ControlPlane
from lbproxy.core.clock import ManualClock
from lbproxy.core.principals import Principal
from lbproxy.proxy.controllink import ControlClient, Signer
from lbproxy.testing import ControlThread, read_events, wait_until

#: The data plane's report for the demo's instances: two healthy, one failing its health check.
HEALTH = (
    InstanceHealthReport("web-1", "healthy"),
    InstanceHealthReport("web-2", "healthy"),
    InstanceHealthReport("web-3", "unhealthy", "Instance.ResponseCodeMismatch"),
)
#: One minute of traffic.
METRICS = {
    "RequestCount": 60.0,
    "HTTPCode_Instance_2XX_Count": 52.0,
    "HTTPCode_Instance_4XX_Count": 5.0,
    "HTTPCode_LB_5XX_Count": 3.0,
    "HealthyHostCount": 2.0,
    "UnhealthyHostCount": 1.0,
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class DataPlane:
    """What ``lbproxy lb`` does with the control plane, as its load balancer's principal: read its configuration,
    follow its events, report health, metrics and its key state."""

    def __init__(self, url: str, principal: Principal, name: str, region: str) -> None:
        self.url = url
        self.principal = principal
        self.name = name
        creds = ReadOnlyCredentials(principal.access_key_id, principal.secret_access_key, None)
        self.client = ControlClient(url, Signer(creds, region))

    def config(self) -> DataPlaneConfig:
        return DataPlaneConfig.from_json(self.client.get_json(f"{DATAPLANE_PREFIX}/load-balancers/{self.name}"))

    def events(self, after: int, want: int = 1) -> list[dict[str, Any]]:
        return read_events(self.url, self.principal, after=after, want=want)

    def report(
        self,
        *,
        instances: tuple[InstanceHealthReport, ...] = (),
        metrics: dict[str, float] | None = None,
        key_state: KeyStateReport | None = None,
    ) -> dict[str, Any]:
        doc = DataPlaneReport(instances, dict(metrics or {}), key_state).to_json()
        out: dict[str, Any] = self.client.post_json(f"{DATAPLANE_PREFIX}/load-balancers/{self.name}/report", doc)
        return out

    def loaded(self, since: float, **workers: Any) -> KeyStateReport:
        """The key state after the key was decrypted through the grant: the certificate it serves (ARN, serial,
        SHA-256 of its DER), and ``workers`` (workers, workers_expected, restarts, last_exit, degraded)."""
        cert = self.config().certificate
        assert cert is not None, "no certificate attached"
        der = x509.load_pem_x509_certificate(cert.certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
        fields: dict[str, Any] = {"workers": 1, "workers_expected": 1, **workers}
        return KeyStateReport(
            state="loaded",
            since=since,
            certificate_arn=cert.acm_certificate_arn,
            serial=str(cert.bundle.get("Serial") or ""),
            fingerprint=hashlib.sha256(der).hexdigest(),
            **fields,
        )


class Dash:
    """The control plane thread plus the ``Dashboard`` its installer created."""

    def __init__(self, ct: ControlThread, holder: dict[str, dashboard.Dashboard], streams: list[web.Request]) -> None:
        self.ct = ct
        self._holder = holder
        #: The requests answered with an event stream, in order (their handlers' tasks: ``request.task``).
        self.streams = streams

    @property
    def plane(self) -> ControlPlane:
        assert self.ct.plane is not None
        return self.ct.plane

    @property
    def dashboard(self) -> dashboard.Dashboard:
        return self._holder["dashboard"]

    @property
    def url(self) -> str:
        return dashboard.dashboard_url(self.plane, self.ct.url)

    @property
    def token(self) -> str:
        return self.dashboard.token

    def role(self, name: str) -> Principal:
        role: Principal = self.ct.call(lambda: self.plane.principals.ensure_role(name))
        return role

    def data_plane(self, lb: str) -> DataPlane:
        """The load balancer's data plane (the load balancer must exist: its principal is made with it)."""
        principal = self.ct.call(lambda: self.plane.principals.get(lb))
        assert principal is not None, lb
        return DataPlane(self.ct.url, principal, lb, self.ct.settings.region)

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

    def set_up_demo(self, lb: str = "demo-lb", **workers: Any) -> tuple[str, str]:
        """The demo's setup through the public API: load balancer, three instances, certificate attached (which
        makes the grant ``IssuedThroughACM``); then the data plane's reports, one a minute for four minutes, the
        last with the key loaded (``workers``: see ``DataPlane.loaded``). Returns (key id, grant id)."""
        plane = self.plane
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

        dp = self.data_plane(lb)
        for minute in range(4):
            if minute:
                self.ct.clock.advance(seconds=60)  # type: ignore[attr-defined]
            dp.report(instances=HEALTH, metrics=METRICS)
        dp.report(key_state=dp.loaded(self.ct.clock.time(), **workers))
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
    streams: list[web.Request] = []

    async def remember_streams(request: web.Request, response: web.StreamResponse) -> None:
        if response.headers.get("Content-Type", "").startswith("text/event-stream"):
            streams.append(request)

    def install(app: web.Application, plane: ControlPlane) -> None:
        install_routes(app, plane)
        dashboard.install(app, plane)
        holder["dashboard"] = app[dashboard.DASHBOARD]
        app.on_response_prepare.append(remember_streams)

    ct = ControlThread(tmp_path / "data", clock=ManualClock(), installers=[install], validation_delay=0.0).start()
    try:
        yield Dash(ct, holder, streams)
    finally:
        ct.stop()
