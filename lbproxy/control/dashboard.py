"""The dashboard: one page, served by the control plane, that tells the key flow's story live.

Routes (added by ``install``, a ``RouteInstaller``):

- ``GET /``                      the page (``static/index.html``); ``GET /static/NAME`` its script and style.
- ``GET /dashboard/api/state``   one JSON snapshot: keys + grants, certificates, load balancers (listeners,
                                 attributes, instances' health, the data plane's key state, per-minute
                                 request counts), the last audit records.
- ``POST /dashboard/api/call``   ``{"target": "TrentService.RevokeGrant", "params": {...}}``: the very same
                                 dispatch as the AWS API (``app.invoke``: validation, handler, audit record),
                                 as the admin principal with user agent ``lbproxy-dashboard``.
- ``GET /dashboard/api/events``  server-sent events: every control-plane event (admin view), every new audit
                                 record, every data-plane key-state report.

Authentication is a random token in ``DATA_DIR/dashboard-token`` (0600, created on first start), given once
in the URL (``dashboard_url``: ``http://HOST:PORT/?token=...``, as Jupyter does); the page keeps it in
``sessionStorage`` and sends it as ``X-Lbproxy-Dashboard-Token``. The event stream also accepts
``?token=`` because ``EventSource`` cannot set headers. Compared in constant time; wrong or missing -> 401.

The snapshot reads the services through their own API handlers (``ListKeys``, ``GetLoadBalancers``,
``GetLoadBalancerMetricData``...) as the admin, without audit records (reading is not an action), and
every service but KMS is optional: the dashboard works with whatever the control plane registered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import inspect
import json
import logging
import math
import os
import re
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from lbproxy.awsapi.dispatch import audit_record, invoke
from lbproxy.awsapi.errors import AwsError, UnknownOperationException
from lbproxy.awsapi.protocol import AwsJsonService, RequestContext, encode
from lbproxy.awsapi.shapes import operation_model, validate_input
from lbproxy.control.app import aws_error_response, parse_json_body, read_body
from lbproxy.control.plane import ControlPlane

log = logging.getLogger("lbproxy.control")

TOKEN_FILE = "dashboard-token"
TOKEN_HEADER = "X-Lbproxy-Dashboard-Token"
USER_AGENT = "lbproxy-dashboard"
STATIC_DIR = Path(__file__).with_name("static")
#: Audit records kept in memory for the page (the file keeps them all).
AUDIT_KEPT = 200
#: Audit records in a snapshot.
AUDIT_IN_STATE = 60
#: Minutes of request counts in a snapshot.
METRIC_MINUTES = 15

KMS = "TrentService"
ACM = "CertificateManager"
LIGHTSAIL = "Lightsail_20161128"
#: Target prefix of lbproxy's own operations in ``/dashboard/api/call`` (``lbproxy.DetachLoadBalancerTlsCertificate``).
EXTENSION_PREFIX = "lbproxy"

#: Operations the dashboard refuses even to the admin: they answer with key material (a plaintext data
#: key, a private key), which has no business in a browser whose credential sits in a URL.
REFUSED = frozenset(
    {
        f"{KMS}.Decrypt",
        f"{KMS}.GenerateDataKey",
        f"{KMS}.GenerateDataKeyPair",
        f"{KMS}.GenerateRandom",
        f"{ACM}.ExportCertificate",
    }
)
#: Status classes of the request chart -> the Lightsail metrics summed into each.
STATUS_CLASSES: dict[str, tuple[str, ...]] = {
    "2xx": ("HTTPCode_Instance_2XX_Count",),
    "3xx": ("HTTPCode_Instance_3XX_Count",),
    "4xx": ("HTTPCode_Instance_4XX_Count", "HTTPCode_LB_4XX_Count"),
    "5xx": ("HTTPCode_Instance_5XX_Count", "HTTPCode_LB_5XX_Count"),
}
#: Key states the page knows (anything else is shown as reported).
KEY_STATES = ("LOADED", "WIPED", "NONE")

_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.(?:js|css|svg|html)$")
_SECURITY_HEADERS = {
    # No inline script, no third party: everything the page needs comes from this origin.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    # The token is in the page's URL: never send it along as a referrer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class DashboardRefused(AwsError):
    code = "AccessDeniedException"


class DashboardInvalidInput(AwsError):
    code = "InvalidInputException"


# == the token ====================================================================================


def load_or_create_token(data_dir: Path) -> str:
    """The dashboard token in ``DATA_DIR/dashboard-token``: read it, or create it (0600) on first start."""
    path = data_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


def dashboard_url(plane: ControlPlane, base_url: str) -> str:
    """``http://HOST:PORT/?token=...``: what ``lbproxy control`` / ``lbproxy demo`` print for the browser."""
    return f"{base_url.rstrip('/')}/?token={load_or_create_token(plane.data_dir)}"


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


# == live sources =================================================================================


class Pulse:
    """Wakes every waiting event stream; ``fire`` may be called from any thread."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._lock = threading.Lock()

    def fire(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is waiting any more
                fut.get_loop().call_soon_threadsafe(_resolve, fut)

    async def wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.add(fut)
        try:
            await fut
        finally:
            with self._lock:
                self._waiters.discard(fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AuditTail:
    """The last audit records, numbered, for the snapshot and the live trail (fed by ``AuditLog``)."""

    def __init__(self, pulse: Pulse, keep: int = AUDIT_KEPT) -> None:
        self._records: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=keep)
        self._seq = 0
        self._lock = threading.Lock()
        self._pulse = pulse

    def seed(self, path: Path, tail_bytes: int = 256 * 1024) -> None:
        """Start from the end of the audit file (records written before this start)."""
        try:
            with path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - tail_bytes))
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        if size > tail_bytes and lines:
            lines = lines[1:]  # the first one is probably cut
        for line in lines[-(self._records.maxlen or AUDIT_KEPT) :]:
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    self.append(rec, wake=False)

    def append(self, rec: dict[str, Any], wake: bool = True) -> None:
        with self._lock:
            self._seq += 1
            self._records.append((self._seq, rec))
        if wake:
            self._pulse.fire()

    @property
    def seq(self) -> int:
        return self._seq

    def since(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [(n, r) for n, r in self._records if n > seq]

    def latest(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            return [r for _, r in list(self._records)[-n:]]


@dataclass(slots=True)
class KeyStateReport:
    """What one data plane says about its TLS key (never the key: a fingerprint at most)."""

    load_balancer: str
    state: str  # LOADED | WIPED | NONE
    since: float
    fingerprint: str | None = None
    certificate: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "loadBalancer": self.load_balancer,
            "state": self.state,
            "since": self.since,
            "fingerprint": self.fingerprint,
            "certificate": self.certificate,
            "reason": self.reason,
            **self.extra,
        }


class KeyStates:
    """Key-state reports kept by the dashboard itself, for data planes that report here directly
    (and for tests); what the Lightsail service stores takes precedence (see ``Dashboard.key_states``)."""

    def __init__(self, pulse: Pulse) -> None:
        self._reports: dict[str, KeyStateReport] = {}
        self._lock = threading.Lock()
        self._pulse = pulse

    def report(
        self,
        load_balancer: str,
        state: str,
        *,
        since: float,
        fingerprint: str | None = None,
        certificate: str | None = None,
        reason: str | None = None,
    ) -> KeyStateReport:
        rep = KeyStateReport(load_balancer, state.upper(), since, fingerprint, certificate, reason)
        with self._lock:
            self._reports[load_balancer] = rep
        self._pulse.fire()
        return rep

    def all(self) -> dict[str, KeyStateReport]:
        with self._lock:
            return dict(self._reports)


# == the dashboard ================================================================================


class Dashboard:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.token = load_or_create_token(plane.data_dir)
        self.pulse = Pulse()
        self.audit = AuditTail(self.pulse)
        self.audit.seed(plane.audit.path)
        self.reports = KeyStates(self.pulse)
        self.closing = False
        plane.audit.subscribe(self.audit.append)

    # -- actions ---------------------------------------------------------------------------------

    async def call(self, target: str, params: Any, source_ip: str = "") -> Any:
        """Run ``target`` with ``params`` as the admin, exactly as the AWS API would (raises ``AwsError``)."""
        prefix, _, operation = target.partition(".")
        ctx = RequestContext(
            principal=self.plane.admin,
            request_id=str(uuid.uuid4()),
            region=self.plane.settings.region,
            source_ip=source_ip,
            user_agent=USER_AGENT,
        )
        if prefix == EXTENSION_PREFIX:
            return self._extension(operation, params, ctx)
        service = self.plane.services.get(prefix)
        if service is None or not operation:
            raise UnknownOperationException("")

        def checked_params() -> Any:
            # Inside ``invoke`` so that a refusal is audited like any other error.
            if target in REFUSED:
                raise DashboardRefused(f"The dashboard does not call {target}: it returns key material.")
            return params

        return await invoke(self.plane.audit, service, operation, ctx, checked_params)

    def _extension(self, operation: str, params: Any, ctx: RequestContext) -> Any:
        """lbproxy's own operations (no AWS equivalent), audited as ``lbproxy:NAME`` like their HTTP routes."""
        lightsail = self._lightsail()
        detach = getattr(lightsail, "detach_certificate", None)
        source, name = "lightsail.amazonaws.com", f"lbproxy:{operation}"
        parameters: dict[str, Any] | None = None
        try:
            if operation != "DetachLoadBalancerTlsCertificate" or not callable(detach):
                raise UnknownOperationException("")
            if not isinstance(params, dict) or not all(
                isinstance(params.get(k), str) for k in ("loadBalancerName", "certificateName")
            ):
                raise DashboardInvalidInput("loadBalancerName and certificateName (strings) are required.")
            parameters = {"lb": params["loadBalancerName"], "cert": params["certificateName"]}
            result = {"operations": detach(params["loadBalancerName"], params["certificateName"])}
        except AwsError as exc:
            self.plane.audit.record(audit_record(source, name, ctx, exc, parameters))
            raise
        self.plane.audit.record(audit_record(source, name, ctx, None, parameters))
        return result

    def _lightsail(self) -> Any:
        """The Lightsail service object (``plane.lightsail``, or the one behind the registered API), if any."""
        found = getattr(self.plane, "lightsail", None)
        if found is None:
            found = getattr(self.plane.services.get(LIGHTSAIL), "service", None)
        return found

    # -- reading ---------------------------------------------------------------------------------

    async def read(self, prefix: str, operation: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Call a read-only API handler as the admin (validated, not audited); ``None`` when the service or
        operation is not there or the call fails."""
        service = self.plane.services.get(prefix)
        if service is None:
            return None
        handler = service.handlers().get(operation)
        op = operation_model(service.model_name, operation)
        if handler is None or op is None:
            return None
        ctx = RequestContext(self.plane.admin, str(uuid.uuid4()), self.plane.settings.region, "", USER_AGENT)
        try:
            result: Any = handler(ctx, validate_input(op, dict(params or {}), service.validation_error))
            if inspect.isawaitable(result):
                result = await result
        except AwsError as exc:
            log.debug("dashboard read %s.%s: %s", prefix, operation, exc.code)
            return None
        except Exception:
            log.exception("dashboard read %s.%s failed", prefix, operation)
            return None
        # One JSON round trip: datetimes become epoch seconds, exactly as the API would answer.
        return json.loads(encode(result or {}))

    def operations(self, prefix: str) -> list[str]:
        if prefix == EXTENSION_PREFIX:
            return ["DetachLoadBalancerTlsCertificate"] if hasattr(self._lightsail(), "detach_certificate") else []
        service: AwsJsonService | None = self.plane.services.get(prefix)
        return sorted(service.handlers()) if service is not None else []

    async def snapshot(self) -> dict[str, Any]:
        now = self.plane.clock.time()
        keys = await self._keys()
        certificates = await self._certificates(keys)
        states = self.key_states()
        load_balancers = await self._load_balancers(now, states)
        return {
            "generatedAt": now,
            "region": self.plane.settings.region,
            "services": sorted(self.plane.services),
            "operations": {p: self.operations(p) for p in (KMS, ACM, LIGHTSAIL, EXTENSION_PREFIX)},
            "keys": keys,
            "certificates": certificates,
            "loadBalancers": load_balancers,
            "dataPlanes": sorted(states.values(), key=lambda s: str(s["loadBalancer"])),
            "audit": self.audit.latest(AUDIT_IN_STATE),
            "auditSeq": self.audit.seq,
            "eventId": self.plane.events.last_id(),
        }

    async def _keys(self) -> list[dict[str, Any]]:
        listed = await self.read(KMS, "ListKeys", {"Limit": 1000}) or {}
        aliases: dict[str, list[str]] = {}
        for a in (await self.read(KMS, "ListAliases", {"Limit": 100}) or {}).get("Aliases", []):
            if a.get("TargetKeyId"):
                aliases.setdefault(a["TargetKeyId"], []).append(a["AliasName"])
        out = []
        for k in listed.get("Keys", []):
            md = (await self.read(KMS, "DescribeKey", {"KeyId": k["KeyId"]}) or {}).get("KeyMetadata")
            if md is None:
                continue
            rotation = await self.read(KMS, "GetKeyRotationStatus", {"KeyId": k["KeyId"]}) or {}
            grants = await self.read(KMS, "ListGrants", {"KeyId": k["KeyId"], "Limit": 1000}) or {}
            out.append(
                {
                    "keyId": md["KeyId"],
                    "arn": md["Arn"],
                    "aliases": sorted(aliases.get(md["KeyId"], [])),
                    "description": md.get("Description", ""),
                    "manager": md.get("KeyManager"),
                    "state": md.get("KeyState"),
                    "creationDate": md.get("CreationDate"),
                    "deletionDate": md.get("DeletionDate"),
                    "rotation": bool(rotation.get("KeyRotationEnabled")),
                    "nextRotation": rotation.get("NextRotationDate"),
                    "grants": [_grant(g) for g in grants.get("Grants", [])],
                }
            )
        return out

    async def _certificates(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if ACM not in self.plane.services:
            return []
        every_type = ["RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1"]
        listed = await self.read(ACM, "ListCertificates", {"Includes": {"keyTypes": every_type}, "MaxItems": 1000})
        key_by_arn = {k["arn"]: k for k in keys}
        out = []
        for summary in (listed or {}).get("CertificateSummaryList", []):
            arn = summary["CertificateArn"]
            detail = (await self.read(ACM, "DescribeCertificate", {"CertificateArn": arn}) or {}).get("Certificate", {})
            sealed_under = self._sealed_under(arn)
            key = key_by_arn.get(sealed_under or "")
            out.append(
                {
                    "arn": arn,
                    "domain": summary.get("DomainName"),
                    "names": detail.get("SubjectAlternativeNames", summary.get("SubjectAlternativeNameSummaries", [])),
                    "status": summary.get("Status"),
                    "type": summary.get("Type"),
                    "notBefore": detail.get("NotBefore"),
                    "notAfter": detail.get("NotAfter"),
                    "keyAlgorithm": detail.get("KeyAlgorithm", summary.get("KeyAlgorithm")),
                    "renewalEligibility": detail.get("RenewalEligibility"),
                    "inUseBy": detail.get("InUseBy", []),
                    "sealedUnder": sealed_under,
                    "sealedUnderAliases": key["aliases"] if key else [],
                }
            )
        return out

    def _sealed_under(self, cert_arn: str) -> str | None:
        """The ARN of the KMS key that wraps the certificate's data key (ACM's vault knows; the API does not
        say, as in AWS)."""
        manager = getattr(self.plane.services.get(ACM), "manager", None)
        if manager is None:
            return None
        load = getattr(manager, "_load", None)  # the record itself, when the manager lets us see it
        if callable(load):
            with contextlib.suppress(Exception):
                cert = load(cert_arn)
                sealed = getattr(cert, "sealed", None)
                if sealed is not None:
                    return str(sealed.key_arn)
        vault = getattr(manager, "vault", None)
        with contextlib.suppress(Exception):
            return str(self.plane.kms.key_arn(vault.key_id)) if vault is not None else None
        return None

    async def _load_balancers(self, now: float, states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        if LIGHTSAIL not in self.plane.services:
            return []
        listed = await self.read(LIGHTSAIL, "GetLoadBalancers", {}) or {}
        out = []
        for lb in listed.get("loadBalancers", []):
            name = lb.get("name", "")
            certs = await self.read(LIGHTSAIL, "GetLoadBalancerTlsCertificates", {"loadBalancerName": name}) or {}
            entry = dict(lb)
            entry["tlsCertificates"] = certs.get("tlsCertificates", [])
            entry["keyState"] = states.get(name) or {"loadBalancer": name, "state": "NONE", "reported": False}
            entry["requests"] = await self._requests(name, now)
            out.append(entry)
        return out

    async def _requests(self, lb_name: str, now: float) -> dict[str, Any]:
        """Requests per minute per status class over the last ``METRIC_MINUTES`` minutes."""
        end = (math.floor(now / 60) + 1) * 60
        start = end - METRIC_MINUTES * 60
        minutes = [start + 60 * i for i in range(METRIC_MINUTES)]
        series: dict[str, list[float]] = {c: [0.0] * METRIC_MINUTES for c in STATUS_CLASSES}
        available = "GetLoadBalancerMetricData" in self.operations(LIGHTSAIL)
        if available:
            for cls, metrics in STATUS_CLASSES.items():
                for metric in metrics:
                    data = await self.read(
                        LIGHTSAIL,
                        "GetLoadBalancerMetricData",
                        {
                            "loadBalancerName": lb_name,
                            "metricName": metric,
                            "period": 60,
                            "startTime": start,
                            "endTime": end,
                            "unit": "Count",
                            "statistics": ["Sum"],
                        },
                    )
                    for point in (data or {}).get("metricData", []):
                        i = int((float(point.get("timestamp", 0)) - start) // 60)
                        if 0 <= i < METRIC_MINUTES:
                            series[cls][i] += float(point.get("sum", 0))
        return {"available": available, "minutes": minutes, "series": series}

    def key_states(self) -> dict[str, dict[str, Any]]:
        """Each data plane's key state by load-balancer name: what the Lightsail service stores, else what
        was reported to the dashboard directly."""
        out = {name: rep.to_json() | {"reported": True} for name, rep in self.reports.all().items()}
        reader = getattr(self._lightsail(), "key_states", None)
        if callable(reader):
            try:
                stored = reader()
            except Exception:
                log.exception("reading the data planes' key states failed")
                stored = {}
            for name, value in _as_mapping(stored).items():
                out[name] = _normalize_key_state(name, value)
        return out


def _grant(g: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "grantId": g.get("GrantId"),
        "keyArn": g.get("KeyId"),
        "name": g.get("Name", ""),
        "grantee": g.get("GranteePrincipal"),
        "retiringPrincipal": g.get("RetiringPrincipal"),
        "operations": list(g.get("Operations", [])),
        "constraints": g.get("Constraints"),
        "creationDate": g.get("CreationDate"),
    }


def _as_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable):
        out = {}
        for item in value:
            d = item if isinstance(item, Mapping) else getattr(item, "__dict__", {})
            name = d.get("loadBalancer") or d.get("loadBalancerName") or d.get("load_balancer")
            if name:
                out[str(name)] = d
        return out
    return {}


def _normalize_key_state(name: str, value: Any) -> dict[str, Any]:
    d = dict(value) if isinstance(value, Mapping) else dict(getattr(value, "__dict__", {}))
    state = str(d.get("state") or d.get("keyState") or "NONE").upper()
    return {
        "loadBalancer": name,
        "state": state,
        "since": d.get("since"),
        "fingerprint": d.get("fingerprint") or d.get("certificateFingerprint"),
        "certificate": d.get("certificate") or d.get("certificateName") or d.get("certificateArn"),
        "reason": d.get("reason"),
        "workers": d.get("workers"),
        "workersExpected": d.get("workersExpected"),
        "restarts": d.get("restarts"),
        "lastExit": d.get("lastExit"),
        "degraded": d.get("degraded"),
        "reported": True,
    }


# == HTTP =========================================================================================

DASHBOARD = web.AppKey("dashboard", Dashboard)


def _given_token(request: web.Request, allow_query: bool = False) -> str | None:
    given = request.headers.get(TOKEN_HEADER)
    if given is None and allow_query:
        given = request.query.get("token")
    return given


def _unauthorized() -> web.Response:
    return web.json_response(
        {"message": "The dashboard token is missing or wrong: open the URL the control plane printed (/?token=...)."},
        status=401,
        headers={"Cache-Control": "no-store", "WWW-Authenticate": "LbproxyDashboardToken"},
    )


async def handle_index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_SECURITY_HEADERS)


async def handle_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=_SECURITY_HEADERS)


async def handle_state(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    if not token_matches(_given_token(request), dash.token):
        return _unauthorized()
    return web.Response(
        body=encode(await dash.snapshot()), content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def handle_call(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    if not token_matches(_given_token(request), dash.token):
        return _unauthorized()
    request_id = str(uuid.uuid4())
    try:
        body = parse_json_body(await read_body(request, dash.plane.settings.max_request_body))
        if not isinstance(body, dict) or not isinstance(body.get("target"), str):
            raise UnknownOperationException("")
        result = await dash.call(body["target"], body.get("params") or {}, request.remote or "")
    except AwsError as exc:
        return aws_error_response(exc, request_id)
    return web.Response(
        body=encode(result or {}),
        content_type="application/json",
        headers={"x-amzn-RequestId": request_id, "Cache-Control": "no-store"},
    )


def _sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


async def handle_events(request: web.Request) -> web.StreamResponse:
    """Control-plane events (admin view), audit records and key-state reports, as server-sent events.

    The id is ``EVENT-AUDIT`` (the two positions), so a reconnecting ``EventSource`` resumes where it was;
    a new stream starts now (the page has just fetched a snapshot)."""
    dash = request.app[DASHBOARD]
    if not token_matches(_given_token(request, allow_query=True), dash.token):
        return _unauthorized()
    plane = dash.plane
    after, audit_after = plane.events.last_id(), dash.audit.seq
    last = request.headers.get("Last-Event-ID", "")
    if re.fullmatch(r"\d+-\d+", last):
        after, audit_after = (int(x) for x in last.split("-"))
    reports_seen = {name: (r.state, r.since) for name, r in dash.reports.all().items()}
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    await resp.write(b"retry: 1000\n\n")
    try:
        while not dash.closing:
            sent = False
            for ev in plane.events.since(after, plane.admin):
                after = ev.id
                await resp.write(_sse("control", ev.to_json(), f"{after}-{audit_after}"))
                sent = True
            after = max(after, plane.events.scanned_until(after))
            for seq, rec in dash.audit.since(audit_after):
                audit_after = seq
                await resp.write(_sse("audit", rec, f"{after}-{audit_after}"))
                sent = True
            for name, rep in dash.reports.all().items():
                if reports_seen.get(name) != (rep.state, rep.since):
                    reports_seen[name] = (rep.state, rep.since)
                    await resp.write(_sse("keystate", rep.to_json()))
                    sent = True
            if sent:
                continue
            waits = [
                asyncio.ensure_future(plane.events.wait(plane.settings.event_heartbeat)),
                asyncio.ensure_future(dash.pulse.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
            if plane.events.last_id() <= after and not dash.audit.since(audit_after):
                await resp.write(b": keep-alive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


def install(app: web.Application, plane: ControlPlane) -> None:
    """The dashboard's ``RouteInstaller``: ``ControlServer(plane, installers=[dashboard.install])``."""
    dash = Dashboard(plane)
    app[DASHBOARD] = dash
    app.router.add_get("/", handle_index)
    app.router.add_get("/static/{name}", handle_static)
    app.router.add_get("/dashboard/api/state", handle_state)
    app.router.add_post("/dashboard/api/call", handle_call)
    app.router.add_get("/dashboard/api/events", handle_events)

    async def on_shutdown(app: web.Application) -> None:
        # End the event streams now rather than at their next heartbeat.
        dash.closing = True
        dash.pulse.fire()

    app.on_shutdown.append(on_shutdown)
