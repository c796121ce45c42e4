"""The dashboard: one page, served by the control plane, that tells the key flow's story live.

Routes (added by ``install``, a ``RouteInstaller``):

- ``GET /``                      the page (``static/index.html``); ``GET /static/NAME`` its script and style.
- ``GET /dashboard/api/state``   one JSON snapshot (``Dashboard.snapshot``): keys and their grants, certificates,
                                 load balancers (listeners, attributes, instances' health, certificates, what the
                                 data plane reports about its key and its worker processes, per-minute request
                                 counts), how they relate, the last audit records.
- ``POST /dashboard/api/call``   ``{"target": "TrentService.RevokeGrant", "params": {...}}``: the very same
                                 dispatch as the AWS API (``invoke``: validation, handler, audit record), as the
                                 admin principal with user agent ``lbproxy-dashboard``.
- ``GET /dashboard/api/events``  server-sent events: every control-plane event (admin view) as ``control``, a data
                                 plane's key-state change as ``keystate``, every new audit record as ``audit``.

Authentication is a random token in ``DATA_DIR/dashboard-token`` (0600, created on first start), given once
in the URL (``dashboard_url``: ``http://HOST:PORT/?token=...``, as Jupyter does); the page keeps it in
``sessionStorage`` and sends it as ``X-Lbproxy-Dashboard-Token``. The event stream also accepts
``?token=`` because ``EventSource`` cannot set headers. Compared in constant time; wrong or missing -> 401.

The snapshot reads the three services through their typed queries (``KeyService.all_keys``, ``alias_names``,
``grants_for_key``; ``CertificateManager.list_certificates``, ``describe_certificate``, ``sealing_key_arn``;
``LightsailService.overview``, ``metric_data``): reading is not an action, so it leaves no audit record. The
relations the page draws are computed here, never guessed in the browser:

- a grant's ``loadBalancer`` and ``certificateArn``: the load balancer that holds it (Lightsail keeps the grant
  it got when the certificate was attached) and that certificate; for a grant made some other way, the load
  balancer its encryption-context constraint names, else the one whose principal is its grantee;
- a certificate's ``sealedUnder`` (the key that wraps its private key) and ``usedBy`` (which load balancers);
- a load balancer's ``certificateArn``, ``grantId`` and ``keyArn``, and its key state's ``certificateName``;
- ``flow``: the story the page's diagram tells (the certificate in use, the key that seals it, the grant made
  for it, the load balancer that decrypts through that grant).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from lbproxy.awsapi.dispatch import audit_record, invoke
from lbproxy.awsapi.errors import AwsError, UnknownOperationException
from lbproxy.awsapi.protocol import RequestContext, encode
from lbproxy.certs.keys import IMPORTABLE
from lbproxy.certs.manager import ACM_ARN_CONTEXT, LIGHTSAIL_ARN_CONTEXT
from lbproxy.contract.dataplane import KeyStateReport
from lbproxy.contract.vocabulary import ACM_KEY_ALIAS, LB_KEY_STATE_CHANGED
from lbproxy.control.app import aws_error_response, parse_json_body, read_body, stream_until_disconnect
from lbproxy.control.plane import ControlPlane
from lbproxy.core.events import Event
from lbproxy.keyservice.grants import Grant
from lbproxy.keyservice.keys import PENDING_DELETION
from lbproxy.lightsail.rows import KeyStateRecord
from lbproxy.lightsail.service import LoadBalancerView

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
#: Target prefix of lbproxy's own operations in ``/dashboard/api/call`` (``lbproxy.DetachLoadBalancerTlsCertificate``).
EXTENSION_PREFIX = "lbproxy"
DETACH = "DetachLoadBalancerTlsCertificate"

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
#: The key state of a load balancer whose data plane has not reported yet (the page shows NO KEY).
NOT_REPORTED = "NONE"

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


# == the dashboard ================================================================================


class Dashboard:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.token = load_or_create_token(plane.data_dir)
        self.pulse = Pulse()
        self.audit = AuditTail(self.pulse)
        self.audit.seed(plane.audit.path)
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
        source, name = "lightsail.amazonaws.com", f"lbproxy:{operation}"
        parameters: dict[str, Any] | None = None
        try:
            if operation != DETACH:
                raise UnknownOperationException("")
            if not isinstance(params, dict) or not all(
                isinstance(params.get(k), str) for k in ("loadBalancerName", "certificateName")
            ):
                raise DashboardInvalidInput("loadBalancerName and certificateName (strings) are required.")
            parameters = {"lb": params["loadBalancerName"], "cert": params["certificateName"]}
            ops = self.plane.lightsail.detach_certificate(params["loadBalancerName"], params["certificateName"])
        except AwsError as exc:
            self.plane.audit.record(audit_record(source, name, ctx, exc, parameters))
            raise
        self.plane.audit.record(audit_record(source, name, ctx, None, parameters))
        return {"operations": ops}

    # -- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What the page shows, read through the services' typed queries (no audit record: reading is not an
        action), with the relations between keys, grants, certificates and load balancers worked out."""
        now = self.plane.clock.time()
        views = self.plane.lightsail.overview()
        keys = self._keys(Relations(views))
        certificates = self._certificates(keys, views)
        sealed_under = {c["arn"]: c["sealedUnder"] for c in certificates}
        load_balancers = [self._load_balancer(v, now, sealed_under) for v in views]
        return {
            "generatedAt": now,
            "region": self.plane.settings.region,
            "keys": keys,
            "certificates": certificates,
            "loadBalancers": load_balancers,
            "flow": flow(keys, certificates, load_balancers),
            "audit": self.audit.latest(AUDIT_IN_STATE),
            "auditSeq": self.audit.seq,
            "eventId": self.plane.events.last_id(),
        }

    def _keys(self, relations: Relations) -> list[dict[str, Any]]:
        kms = self.plane.kms
        aliases = kms.alias_names()
        return [
            {
                "keyId": k.key_id,
                "arn": k.arn,
                "aliases": aliases.get(k.key_id, []),
                "description": k.description,
                "manager": k.key_manager,
                "state": k.state,
                "creationDate": k.creation_date,
                "deletionDate": k.deletion_date if k.state == PENDING_DELETION else None,
                "rotation": k.rotation_enabled,
                "nextRotation": k.next_rotation if k.rotation_enabled else None,
                "grants": [relations.grant(g, k.arn) for g in kms.grants_for_key(k.key_id)],
            }
            for k in kms.all_keys()
        ]

    def _certificates(self, keys: list[dict[str, Any]], views: Sequence[LoadBalancerView]) -> list[dict[str, Any]]:
        acm = self.plane.acm
        aliases = {k["arn"]: k["aliases"] for k in keys}
        lb_names = {v.arn: v.name for v in views}
        # ListCertificates lists RSA_2048 only unless asked for every key type.
        listed = acm.list_certificates(includes={"keyTypes": list(IMPORTABLE)})["CertificateSummaryList"]
        out = []
        for summary in listed:
            arn = summary["CertificateArn"]
            detail = acm.describe_certificate(arn)
            sealed_under = acm.sealing_key_arn(arn)
            out.append(
                {
                    "arn": arn,
                    "domain": detail["DomainName"],
                    "names": detail["SubjectAlternativeNames"],
                    "status": detail["Status"],
                    "type": detail["Type"],
                    "notBefore": detail.get("NotBefore"),  # (none before it is issued)
                    "notAfter": detail.get("NotAfter"),
                    "keyAlgorithm": detail["KeyAlgorithm"],
                    "renewalEligibility": detail["RenewalEligibility"],
                    "inUseBy": detail["InUseBy"],
                    "usedBy": [{"arn": a, "loadBalancer": lb_names.get(a)} for a in detail["InUseBy"]],
                    "sealedUnder": sealed_under,
                    "sealedUnderAliases": aliases.get(sealed_under, []),
                }
            )
        return out

    def _load_balancer(self, view: LoadBalancerView, now: float, sealed_under: Mapping[str, str]) -> dict[str, Any]:
        names = {c.record.acm_arn: c.record.name for c in view.tls_certificates}
        return {
            **view.shape,
            "tlsCertificates": [{**c.shape, "acmCertificateArn": c.record.acm_arn} for c in view.tls_certificates],
            "certificateArn": view.attached_acm_arn,
            "grantId": view.grant_id,
            "keyArn": sealed_under.get(view.attached_acm_arn) if view.attached_acm_arn else None,
            "keyState": key_state_json(view.name, view.key_state, names),
            "instanceAddresses": view.instance_addresses,
            "requests": self._requests(view.name, now),
        }

    def _requests(self, lb_name: str, now: float) -> dict[str, Any]:
        """Requests per minute per status class over the last ``METRIC_MINUTES`` minutes."""
        end = (math.floor(now / 60) + 1) * 60
        start = end - METRIC_MINUTES * 60
        series: dict[str, list[float]] = {c: [0.0] * METRIC_MINUTES for c in STATUS_CLASSES}
        for cls, metrics in STATUS_CLASSES.items():
            for metric in metrics:
                for point in self.plane.lightsail.metric_data(lb_name, metric, 60, start, end, "Count", ["Sum"]):
                    i = int((point["timestamp"] - start) // 60)
                    if 0 <= i < METRIC_MINUTES:
                        series[cls][i] += point["sum"]
        return {"minutes": [start + 60 * i for i in range(METRIC_MINUTES)], "series": series}


# == relations ====================================================================================


class Relations:
    """Which load balancer a grant is for, from what Lightsail knows of its load balancers."""

    def __init__(self, views: Sequence[LoadBalancerView]) -> None:
        self._by_grant = {v.grant_id: v for v in views if v.grant_id}
        self._by_arn = {v.arn: v for v in views}
        self._by_principal = {v.principal_arn: v for v in views}

    def grant(self, g: Grant, key_arn: str) -> dict[str, Any]:
        constraints = {kind: dict(pairs) for kind, pairs in (g.constraints or {}).items()}
        context = {**constraints.get("EncryptionContextSubset", {}), **constraints.get("EncryptionContextEquals", {})}
        holder = self._by_grant.get(g.grant_id)
        lb = holder or self._by_arn.get(context.get(LIGHTSAIL_ARN_CONTEXT, "")) or self._by_principal.get(g.grantee)
        return {
            "grantId": g.grant_id,
            "keyArn": key_arn,
            "name": g.name,
            "grantee": g.grantee,
            "retiringPrincipal": g.retiring,
            "operations": list(g.operations),
            "constraints": constraints or None,
            "creationDate": g.creation_date,
            "loadBalancer": lb.name if lb is not None else None,
            "certificateArn": holder.attached_acm_arn if holder is not None else context.get(ACM_ARN_CONTEXT),
        }


def key_state_json(lb_name: str, record: KeyStateRecord | None, certificate_names: Mapping[str, str]) -> dict[str, Any]:
    """A data plane's key state for the page: ``state`` in capitals (LOADED, WIPED, NONE), the certificate's name
    on its load balancer, and whether it reported at all."""
    if record is None:
        return {"loadBalancer": lb_name, "state": NOT_REPORTED, "reported": False}
    return {
        **record.to_json(),
        "loadBalancer": lb_name,
        "state": record.state.upper(),
        "certificateName": certificate_names.get(record.certificate_arn or ""),
        "reported": True,
    }


def key_state_event(event: Event) -> dict[str, Any]:
    """A ``loadbalancer.key_state_changed`` event as the page's ``keystate`` event."""
    name = event.detail["loadBalancerName"]
    report = KeyStateReport.from_json(event.detail["keyState"])
    return key_state_json(name, KeyStateRecord.from_report(name, report, event.time), {})


def flow(
    keys: Sequence[Mapping[str, Any]],
    certificates: Sequence[Mapping[str, Any]],
    load_balancers: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The story the diagram tells: the certificate in use (else the first), the key that seals it, the grant made
    for it and the load balancer that decrypts through that grant. With no certificate, a key with grants (a
    customer's first) and its first grant; with neither, ACM's key."""
    cert = next((c for c in certificates if c["usedBy"]), certificates[0] if certificates else None)
    key = next((k for k in keys if cert is not None and k["arn"] == cert["sealedUnder"]), None)
    grant = None
    if key is not None and cert is not None:
        grant = next((g for g in key["grants"] if g["certificateArn"] == cert["arn"]), None)
    if key is None:
        granting = [k for k in keys if k["grants"]]
        key = next((k for k in granting if k["manager"] == "CUSTOMER"), granting[0] if granting else None)
    if key is None:
        key = next((k for k in keys if ACM_KEY_ALIAS in k["aliases"]), keys[0] if keys else None)
    if key is not None and grant is None and cert is None and key["grants"]:
        grant = key["grants"][0]
    lb = grant["loadBalancer"] if grant is not None else None
    if lb is None and cert is not None:
        lb = next((u["loadBalancer"] for u in cert["usedBy"] if u["loadBalancer"]), None)
    if lb is None:
        lb = next((b["name"] for b in load_balancers if b["keyState"]["reported"]), None)
    return {
        "keyArn": key["arn"] if key is not None else None,
        "certificateArn": cert["arn"] if cert is not None else None,
        "grantId": grant["grantId"] if grant is not None else None,
        "loadBalancer": lb,
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
    """The page; opened with its token (``/?token=...``), it carries the state it first paints, so the browser
    shows the keys, grants and load balancers at once rather than an empty page while it fetches them."""
    dash = request.app[DASHBOARD]
    page = (STATIC_DIR / "index.html").read_text()
    if token_matches(_given_token(request, allow_query=True), dash.token):
        # A JSON data block (never executed: the CSP's script-src does not apply); "</" cannot end it early.
        state = encode(dash.snapshot()).decode().replace("</", "<\\/")
        page = page.replace(
            "</body>", f'<script type="application/json" id="initial-state">{state}</script>\n</body>', 1
        )
    return web.Response(text=page, content_type="text/html", headers={**_SECURITY_HEADERS, "Cache-Control": "no-store"})


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
        body=encode(dash.snapshot()), content_type="application/json", headers={"Cache-Control": "no-store"}
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
    """Control-plane events (admin view), key-state changes and audit records, as server-sent events.

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
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    await resp.write(b"retry: 1000\n\n")
    with stream_until_disconnect():
        while not dash.closing:
            sent = False
            for ev in plane.events.since(after, plane.admin):
                after = ev.id
                if ev.type == LB_KEY_STATE_CHANGED:
                    await resp.write(_sse("keystate", key_state_event(ev), f"{after}-{audit_after}"))
                else:
                    await resp.write(_sse("control", ev.to_json(), f"{after}-{audit_after}"))
                sent = True
            after = max(after, plane.events.scanned_until(after))
            for seq, rec in dash.audit.since(audit_after):
                audit_after = seq
                await resp.write(_sse("audit", rec, f"{after}-{audit_after}"))
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
