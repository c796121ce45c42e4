"""The data plane's agent of the control plane: keeps one ``LoadBalancer`` in step with it.

``lbproxy lb --name NAME --control URL`` runs this in the supervisor process (which never holds key
material):

1. Fetch the load balancer's configuration as its own principal (``GET /dataplane/v1/load-balancers/NAME``),
   build a ``LoadBalancerSpec`` and, when an issued certificate is attached, a ``KeySourceRef`` naming
   ``grantkey.ControlKeySource``: the generation leader process (not the supervisor) calls it to fetch the sealed
   bundle, KMS-``Decrypt`` its data key under the grant's encryption context and open the private key into
   a ``bytearray``. The HTTPS listener serves only once that worked.
2. Follow the event stream from the snapshot's ``lastEventId`` and react, in order:
   - grant revoked/retired (ours), key disabled / pending deletion / deleted (ours), certificate detached,
     load balancer deleted -> ``revoke()``: refuse handshakes now, key-less successor, old generation
     drains and exits (the wipe);
   - certificate attached/swapped, ``certificate.renewed`` (ours) -> refetch, ``rotate()`` to the new key;
   - instances/attributes changed -> refetch, ``update()`` (live, no connection dropped).
   A refetch that finds the certificate gone also revokes, so a missed event cannot leave a key loaded.
3. Report instance health, metric counters (increments since the last report) and the key state
   (``loaded``/``wiped``/``none``, since when, certificate fingerprint — never key material — and the
   worker processes: serving / asked for, unasked exits, why the data plane is degraded) every
   ``report_interval`` seconds and soon after the workers change (``POST .../report``). ``loaded`` means a
   live worker process holds the key.
4. If the control plane is unreachable it keeps serving with the key it has and reconnects with backoff;
   with ``key_lease`` > 0 it fails closed (revokes) after that many seconds without contact, and loads
   the key again once contact is back and the grant still holds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from lbproxy.contract import vocabulary
from lbproxy.contract.dataplane import (
    DataPlaneConfig,
    DataPlaneReport,
    DocumentError,
    InstanceHealthReport,
    KeyStateReport,
)
from lbproxy.contract.tlspolicies import DEFAULT_POLICY_NAME
from lbproxy.proxy.controllink import ControlClient, ControlError, Signer, load_credentials
from lbproxy.proxy.eventstream import Event, EventSubscription
from lbproxy.proxy.grantkey import config_path
from lbproxy.proxy.keys import KeySourceRef
from lbproxy.proxy.metrics import GAUGES, LOCAL_COUNTERS
from lbproxy.proxy.spec import InstanceSpec, LoadBalancerSpec, ProxySettings

log = logging.getLogger("lbproxy.proxy")

#: Events that take the key away, in words for the log.
_REVOCATIONS = {
    vocabulary.GRANT_REVOKED: "grant revoked",
    vocabulary.GRANT_RETIRED: "grant retired",
    vocabulary.KEY_DISABLED: "the master key was disabled",
    vocabulary.KEY_PENDING_DELETION: "the master key is pending deletion",
    vocabulary.KEY_DELETED: "the master key was deleted",
}
#: Events after which the configuration is fetched again (instances, attributes, a key or grant back).
REFRESH_EVENTS = frozenset({vocabulary.LB_INSTANCES_CHANGED, vocabulary.LB_ATTRIBUTE_CHANGED,
                            vocabulary.KEY_ENABLED, vocabulary.GRANT_CREATED})  # fmt: skip


def spec_from_config(cfg: DataPlaneConfig) -> LoadBalancerSpec:
    """The control plane's snapshot -> the data plane's frozen spec (pure)."""
    attrs = cfg.attributes
    return LoadBalancerSpec(
        name=cfg.name,
        instances=tuple(InstanceSpec(name=i.name, host=i.host, port=i.port) for i in cfg.instances if i.host),
        health_check_path=attrs.get("HealthCheckPath") or "/",
        session_stickiness_enabled=_truthy(attrs.get("SessionStickinessEnabled", False)),
        stickiness_cookie_duration=int(attrs.get("SessionStickiness_LB_CookieDurationSeconds") or 86400),
        https_redirection_enabled=_truthy(attrs.get("HttpsRedirectionEnabled", False)) and cfg.https_enabled,
        tls_policy_name=attrs.get("TlsPolicyName") or DEFAULT_POLICY_NAME,
        https_enabled=cfg.https_enabled,
        ip_address_type=cfg.ip_address_type,
    )


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


@dataclass(frozen=True, slots=True)
class CertificateView:
    """What the supervisor may know of the attached certificate: names and ids, no key material."""

    acm_arn: str
    grant_id: str
    key_arn: str
    serial: str
    fingerprint: str  # SHA-256 of the certificate's DER, hex

    @classmethod
    def from_config(cls, cfg: DataPlaneConfig) -> CertificateView | None:
        cert = cfg.certificate
        if cert is None:
            return None
        return cls(
            acm_arn=cert.acm_certificate_arn,
            grant_id=cert.grant.grant_id if cert.grant else "",
            key_arn=cert.kms_key_arn or (cert.grant.key_arn if cert.grant else ""),
            serial=cert.serial,
            fingerprint=pem_fingerprint(cert.certificate_pem),
        )


def pem_fingerprint(pem: str) -> str:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    try:
        return hashlib.sha256(base64.b64decode(body.split("-----")[0])).hexdigest()
    except ValueError:
        return ""


class DataPlaneAgent:
    def __init__(
        self,
        control_url: str,
        name: str,
        settings: ProxySettings,
        *,
        report_interval: float = 10.0,
        key_lease: float = 0.0,
        signer: Signer | None = None,
    ) -> None:
        if signer is None:
            creds, region = load_credentials()
            signer = Signer(creds, region)
        self.control_url = control_url.rstrip("/")
        self.name = name
        self.settings = settings
        self.report_interval = report_interval
        self.key_lease = key_lease
        self.client = ControlClient(self.control_url, signer)
        self.signer = signer
        self.lb: Any = None  # lbproxy.proxy.supervisor.LoadBalancer once started
        self.certificate: CertificateView | None = None
        self.key_state = "none"
        self.key_state_since = time.time()
        self.leased_out = False
        self._last_counters: dict[str, float] = {}
        self._subscription: EventSubscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: A refresh that could not reach the control plane, retried in the background (and whether it had
        #: to rotate the key).
        self._refresh_retry: asyncio.Task[None] | None = None
        self._refresh_force = False
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()
        #: Set when the control plane deleted this load balancer: ``lbproxy lb`` then exits.
        self.deleted = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def fetch(self) -> DataPlaneConfig:
        doc = await asyncio.to_thread(self.client.get_json, config_path(self.name))
        try:
            return DataPlaneConfig.from_json(doc)
        except DocumentError as exc:
            raise ControlError(500, "InvalidConfiguration", str(exc)) from None

    async def fetch_until_reachable(self, max_backoff: float = 10.0) -> DataPlaneConfig:
        backoff = 0.2
        while True:
            try:
                return await self.fetch()
            except ControlError as exc:
                if exc.status in (400, 403, 404):
                    raise
                log.warning("control plane unreachable (%s); retrying in %.1fs", exc.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff)

    def _key_ref(self, cfg: DataPlaneConfig) -> KeySourceRef | None:
        """The key source for the attached certificate; None without one, or when its grant no longer holds
        (revoked or retired: nothing to load until a new grant comes)."""
        view = CertificateView.from_config(cfg)
        if view is None or not cfg.https_enabled:
            return None
        grant = cfg.certificate.grant if cfg.certificate is not None else None
        if grant is not None and not grant.active:
            return None
        return KeySourceRef(
            "lbproxy.proxy.grantkey:ControlKeySource",
            {"control_url": self.control_url, "name": self.name, "expect_certificate": view.acm_arn},
        )

    async def start(self) -> None:
        from lbproxy.proxy.supervisor import LoadBalancer

        cfg = await self.fetch_until_reachable()
        self.certificate = CertificateView.from_config(cfg)
        ref = self._key_ref(cfg)
        self.lb = LoadBalancer(spec_from_config(cfg), self.settings, ref)
        await self.lb.start()
        self._set_key_state("loaded" if self.lb.has_key else "none")
        if ref is not None and not self.lb.has_key:
            log.error("the certificate's key could not be loaded; HTTPS handshakes are refused")
        self._subscription = EventSubscription(self.control_url, self.signer, after=cfg.last_event_id)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow_events(), name="lb-events"),
            loop.create_task(self._report_loop(), name="lb-report"),
        ]
        if self.key_lease > 0:
            self._tasks.append(loop.create_task(self._lease_loop(), name="lb-lease"))
        self.ready.set()

    async def stop(self) -> None:
        if self._refresh_retry is not None:
            self._tasks.append(self._refresh_retry)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self.lb is not None:
            await self.lb.stop()
            if self.key_state == "loaded":
                self._set_key_state("wiped")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(self._report_once), 3)

    # -- reacting ----------------------------------------------------------------------------------
    def _set_key_state(self, state: str) -> None:
        if state != self.key_state:
            self.key_state = state
            self.key_state_since = time.time()
            log.info("key state: %s", state)

    async def _follow_events(self) -> None:
        assert self._subscription is not None
        async for event in self._subscription:
            try:
                await self.handle(event)
            except Exception:
                log.exception("handling event %s failed", event.type)

    def _concerns_our_certificate(self, event: Event) -> bool:
        cert = self.certificate
        if cert is None:
            return False
        d = event.detail
        if event.type.startswith("grant."):
            return bool(d.get("grantId")) and d.get("grantId") == cert.grant_id
        if event.type.startswith("key."):
            return bool(d.get("keyArn")) and d.get("keyArn") == cert.key_arn
        if event.type.startswith("certificate."):
            return d.get("certificateArn") == cert.acm_arn
        return False

    async def handle(self, event: Event) -> None:
        t = event.type
        d = event.detail
        if t.startswith("loadbalancer.") and d.get("loadBalancerName") not in (None, self.name):
            return
        if t in vocabulary.GRANT_REVOKING_EVENTS or t in vocabulary.KEY_REVOKING_EVENTS:
            if self._concerns_our_certificate(event):
                log.warning("%s: wiping the key now; HTTPS handshakes are refused, plain HTTP keeps working",
                            _REVOCATIONS.get(t, t))  # fmt: skip
                await self.revoke()
                await self.refresh()
            return
        if t == vocabulary.LB_DELETED:
            log.warning("the load balancer was deleted: wiping the key and stopping")
            await self.revoke()
            self.deleted.set()
            return
        if t == vocabulary.LB_CERTIFICATE_DETACHED:
            await self.revoke()
            await self.refresh()
            return
        renewed = t == vocabulary.CERTIFICATE_RENEWED and self._concerns_our_certificate(event)
        if t == vocabulary.LB_CERTIFICATE_ATTACHED or renewed:
            await self.refresh(force_rotate=True)
            return
        if t in REFRESH_EVENTS:
            await self.refresh()

    async def revoke(self) -> None:
        async with self._lock:
            if self.lb is not None:
                # Even a key-less current generation may have rotated-out predecessors holding a key.
                await self.lb.revoke()
            if self.key_state == "loaded":
                self._set_key_state("wiped")

    def _after_rotation(self) -> None:
        if self.lb.has_key:
            self._set_key_state("loaded")
        elif self.key_state == "loaded":
            self._set_key_state("wiped")

    async def refresh(self, force_rotate: bool = False) -> None:
        """Refetch the configuration and bring the supervisor in line with it. If the control plane cannot
        be reached, the refresh is retried with backoff until it can (a change is never left half-seen)."""
        try:
            cfg = await self.fetch()
        except ControlError as exc:
            self._refresh_force |= force_rotate
            if self._refresh_retry is None or self._refresh_retry.done():
                log.warning("refresh failed: %s; retrying until the control plane answers", exc)
                self._refresh_retry = asyncio.get_running_loop().create_task(self._refresh_later())
            return
        force_rotate |= self._refresh_force
        self._refresh_force = False
        if self._refresh_retry is not None and self._refresh_retry is not asyncio.current_task():
            self._refresh_retry.cancel()
            self._refresh_retry = None
        await self._apply(cfg, force_rotate)

    async def _refresh_later(self, max_backoff: float = 5.0) -> None:
        backoff = 0.2
        while True:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
            try:
                cfg = await self.fetch()
            except ControlError:
                continue
            force, self._refresh_force = self._refresh_force, False
            log.info("control plane reachable again: configuration refreshed")
            self._refresh_retry = None
            await self._apply(cfg, force)
            return

    async def _apply(self, cfg: DataPlaneConfig, force_rotate: bool) -> None:
        async with self._lock:
            spec = spec_from_config(cfg)
            view = CertificateView.from_config(cfg)
            ref = self._key_ref(cfg)
            changed_cert = view != self.certificate
            self.certificate = view
            if ref is None:
                if self.lb.has_key:
                    await self.lb.revoke()
                await self.lb.update(spec, key_source=None)
                self._after_rotation()
                return
            if force_rotate or changed_cert or not self.lb.has_key:
                await self.lb.update(spec, key_source=ref)
                self._after_rotation()
            else:
                await self.lb.update(spec)

    # -- reporting and the lease -------------------------------------------------------------------
    def report_body(self) -> DataPlaneReport:
        assert self.lb is not None
        snap = self.lb.metrics_snapshot()
        metrics: dict[str, float] = {}
        for name, value in snap.items():
            # The control plane accepts Lightsail's metric names only (the TLS handshake counters stay local).
            if name == "InstanceResponseTime" or name in LOCAL_COUNTERS:
                continue
            if name in GAUGES:
                metrics[name] = value
            else:
                metrics[name] = max(0.0, value - self._last_counters.get(name, 0.0))
        self._last_counters = {k: v for k, v in snap.items() if k not in GAUGES}
        instances = tuple(
            InstanceHealthReport(h["instanceName"], h["instanceHealth"], h.get("instanceHealthReason"))
            for h in self.lb.health_snapshot()
        )
        cert = self.certificate
        status = self.lb.status()
        # Never "loaded" for a key no live process holds (a killed worker took it with it).
        if status["keyHeld"]:
            self._set_key_state(vocabulary.KEY_LOADED)
        elif self.key_state == vocabulary.KEY_LOADED:
            self._set_key_state(vocabulary.KEY_WIPED)
        key_state = KeyStateReport(
            state=self.key_state,
            since=self.key_state_since,
            certificate_arn=cert.acm_arn if cert else None,
            serial=cert.serial if cert else None,
            fingerprint=cert.fingerprint if cert else None,
            workers=status["workers"],
            workers_expected=status["workersExpected"],
            restarts=status["restarts"],
            last_exit=status["lastExit"],
            degraded=status["degraded"],
            leased_out=self.leased_out,
            listeners=tuple(status["listeners"]),
        )
        return DataPlaneReport(instances, metrics, key_state)

    def _report_once(self) -> None:
        self.client.post_json(config_path(self.name) + "/report", self.report_body().to_json())

    async def _report_loop(self) -> None:
        changed = self.lb.status_changed
        failing: str | None = None
        while True:
            # Every ``report_interval``, and soon after the workers change (a crash, a replacement).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self.report_interval)
                await asyncio.sleep(0.1)  # (let a burst of changes settle into one report)
            changed.clear()
            try:
                await asyncio.to_thread(self._report_once)
            except ControlError as exc:
                if failing != exc.message:  # once per change, not once per interval
                    log.warning("report failed: %s", exc)
                failing = exc.message
            else:
                if failing is not None:
                    log.info("reports reach the control plane again")
                failing = None

    async def _lease_loop(self) -> None:
        assert self._subscription is not None
        while True:
            await asyncio.sleep(min(1.0, self.key_lease / 4))
            silent = time.monotonic() - self._subscription.last_contact
            if not self._subscription.connected and silent > self.key_lease and not self.leased_out:
                log.error("no contact with the control plane for %.0fs: key lease expired, failing closed", silent)
                self.leased_out = True
                await self.revoke()
            elif self.leased_out and self._subscription.connected:
                log.warning("control plane reachable again: reloading the key if the grant still holds")
                self.leased_out = False
                await self.refresh(force_rotate=True)
