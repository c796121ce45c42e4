"""``LightsailStore``: Lightsail's tables and the steps its operations share.

The tables (``SCHEMA``, prefix ``ls_``): ``ls_instances``, ``ls_load_balancers``, ``ls_lb_instances`` (which
instance is attached to which load balancer, and its health), ``ls_lb_certificates``, ``ls_metric_samples``,
``ls_key_states`` (each data plane's last key-state report) and ``ls_operations`` (every operation a change
answered with, for ``GetOperation``). Their rows are typed in ``rows``; every INSERT names its columns.

Operations (``_operation``): each change is made at once, in its transaction, and answers with the operations
Lightsail answers with for it, recorded. Those AWS answers ``Started`` (a new load balancer, attaching or
detaching instances, deleting a certificate, SetIpAddressType: see the AWS CLI's captured examples) stay
``Started`` for ``lb_provisioning_delay`` / ``lb_operation_delay`` seconds of the control plane's clock, then
read ``Succeeded``; the rest are ``Succeeded`` when returned. A load balancer deleted while some of its
operations are still ``Started`` fails them (``errorCode`` ``NotFoundException``).

Every change and the event that reports it are written in one transaction, so an event exists exactly when
its change does. Events about a load balancer go to its principal (the admin sees them all).

The shared steps: read a load balancer or a certificate (``_require_lb``, ``_require_cert``), whether HTTPS
is on (``_https_enabled``: an ISSUED certificate is attached), publish a change of attached instances or of
attributes, and the certificate steps both CreateLoadBalancer and the certificate operations take: create one
through ACM, detach the attached one (its grant retired), drop one.

The operation classes (``instanceops``, ``loadbalancers``, ``tlscertificates``, ``dataplane``) build on this
one; ``service.LightsailService`` is all of them together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from lbproxy.contract.vocabulary import LB_ATTRIBUTE_CHANGED, LB_CERTIFICATE_DETACHED, LB_INSTANCES_CHANGED
from lbproxy.core.clock import Clock
from lbproxy.core.events import EventLog
from lbproxy.core.principals import Principals
from lbproxy.core.store import Database
from lbproxy.lightsail import attributes as attrs_mod
from lbproxy.lightsail import wire
from lbproxy.lightsail.attributes import HTTPS_REDIRECTION, Attributes
from lbproxy.lightsail.certificates import CertificateBroker
from lbproxy.lightsail.errors import InvalidInputException, NotFoundException, OperationFailureException, not_found
from lbproxy.lightsail.rows import (
    FAILED,
    INSTANCE_TYPE,
    ORIGIN_LIGHTSAIL,
    STARTED,
    SUCCEEDED,
    Attachment,
    LbCertificate,
    LoadBalancer,
    OperationRecord,
)

log = logging.getLogger("lbproxy.control")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ls_instances (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER,
    source TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ls_load_balancers (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    principal_arn TEXT NOT NULL,
    instance_port INTEGER NOT NULL,
    created_at REAL NOT NULL,
    attributes TEXT NOT NULL,
    tags TEXT NOT NULL,
    ip_address_type TEXT NOT NULL,
    dns_name TEXT NOT NULL,
    attached_certificate TEXT,
    grant_id TEXT,
    last_report_at REAL,
    ready_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ls_lb_instances (
    lb_name TEXT NOT NULL REFERENCES ls_load_balancers(name) ON DELETE CASCADE,
    instance_name TEXT NOT NULL,
    attached_at REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (lb_name, instance_name)
);
CREATE TABLE IF NOT EXISTS ls_lb_certificates (
    lb_name TEXT NOT NULL REFERENCES ls_load_balancers(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    id TEXT NOT NULL,
    acm_arn TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at REAL NOT NULL,
    tags TEXT NOT NULL,
    PRIMARY KEY (lb_name, name)
);
CREATE TABLE IF NOT EXISTS ls_metric_samples (
    lb_name TEXT NOT NULL,
    metric TEXT NOT NULL,
    time REAL NOT NULL,
    sum REAL NOT NULL,
    count REAL NOT NULL,
    minimum REAL NOT NULL,
    maximum REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ls_metric_samples_by_lb ON ls_metric_samples (lb_name, metric, time);
CREATE TABLE IF NOT EXISTS ls_operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    resource_name TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    operation_type TEXT NOT NULL,
    details TEXT NOT NULL,
    lb_name TEXT,
    zone TEXT NOT NULL,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    status TEXT NOT NULL,
    status_changed_at REAL NOT NULL,
    error_code TEXT,
    error_details TEXT
);
CREATE INDEX IF NOT EXISTS ls_operations_by_resource ON ls_operations (resource_name, seq);
CREATE INDEX IF NOT EXISTS ls_operations_by_lb ON ls_operations (lb_name, status);
CREATE TABLE IF NOT EXISTS ls_key_states (
    lb_name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since REAL NOT NULL,
    certificate_arn TEXT,
    serial TEXT,
    fingerprint TEXT,
    workers INTEGER NOT NULL DEFAULT 0,
    reported_at REAL NOT NULL,
    workers_expected INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    last_exit TEXT,
    degraded TEXT,
    listeners TEXT
);
"""

#: ``ls_load_balancers`` columns added after its first version (a data dir made before gets them on start).
LB_COLUMNS_ADDED = {"ready_at": "REAL NOT NULL DEFAULT 0"}
#: ``ls_key_states`` columns added after its first version (a data dir made before gets them on start).
KEY_STATE_COLUMNS_ADDED = {
    "workers_expected": "INTEGER NOT NULL DEFAULT 0",
    "restarts": "INTEGER NOT NULL DEFAULT 0",
    "last_exit": "TEXT",
    "degraded": "TEXT",
    "listeners": "TEXT",
}


class LightsailLimits(Protocol):
    """What ``lbproxy control`` settles for Lightsail (``lbproxy.config.ControlSettings``)."""

    lb_provisioning_delay: float
    lb_operation_delay: float
    max_load_balancers: int
    max_certificates_per_lb: int


class LightsailStore:
    """The tables and the steps every Lightsail operation shares (see the module docstring)."""

    region: str
    #: Delays and limits (``ControlSettings``: ``lb_provisioning_delay``, ``lb_operation_delay``,
    #: ``max_load_balancers``, ``max_certificates_per_lb``).
    limits: LightsailLimits
    #: ACM through Lightsail's adapter (requests, status, associations and their grants, sealed bundles).
    certificates: CertificateBroker
    _db: Database
    _principals: Principals
    _events: EventLog
    _clock: Clock
    _lock: threading.RLock

    # == rows =====================================================================================

    def _load_lb(self, name: str) -> LoadBalancer | None:
        r = self._db.query_one("SELECT * FROM ls_load_balancers WHERE name = ?", (name,))
        return LoadBalancer.from_row(r) if r is not None else None

    def _require_lb(self, name: str) -> LoadBalancer:
        lb = self._load_lb(name)
        if lb is None:
            raise not_found("LoadBalancer", name)
        return lb

    def _lb_names(self) -> list[str]:
        return [r["name"] for r in self._db.query("SELECT name FROM ls_load_balancers ORDER BY name")]

    def _certs(self, lb_name: str) -> list[LbCertificate]:
        rows = self._db.query(
            "SELECT * FROM ls_lb_certificates WHERE lb_name = ? ORDER BY created_at, name", (lb_name,)
        )
        return [LbCertificate.from_row(r) for r in rows]

    def _cert_or_none(self, lb_name: str, name: str | None) -> LbCertificate | None:
        r = self._db.query_one("SELECT * FROM ls_lb_certificates WHERE lb_name = ? AND name = ?", (lb_name, name))
        return LbCertificate.from_row(r) if r is not None else None

    def _require_cert(self, lb_name: str, name: str) -> LbCertificate:
        cert = self._cert_or_none(lb_name, name)
        if cert is None:
            raise not_found("LoadBalancerTlsCertificate", name)
        return cert

    def _attached(self, lb_name: str) -> dict[str, Attachment]:
        """The instances attached to a load balancer, by name (in name order)."""
        rows = self._db.query("SELECT * FROM ls_lb_instances WHERE lb_name = ? ORDER BY instance_name", (lb_name,))
        return {r["instance_name"]: Attachment.from_row(r) for r in rows}

    def _lbs_with_instance(self, name: str) -> list[LoadBalancer]:
        rows = self._db.query("SELECT lb_name FROM ls_lb_instances WHERE instance_name = ?", (name,))
        return [lb for r in rows if (lb := self._load_lb(r["lb_name"])) is not None]

    @staticmethod
    def _insert_certificate_row(tx: sqlite3.Connection, cert: LbCertificate) -> None:
        tx.execute(
            "INSERT INTO ls_lb_certificates (lb_name, name, id, acm_arn, origin, created_at, tags)"
            " VALUES (?,?,?,?,?,?,?)",
            (cert.lb_name, cert.name, cert.id, cert.acm_arn, cert.origin, cert.created_at, json.dumps(cert.tags)),
        )

    # == names ====================================================================================

    def _lb_arn(self, lb: LoadBalancer) -> str:
        return wire.lb_arn(self.region, lb)

    def _lb_ref(self, lb: LoadBalancer) -> dict[str, Any]:
        return wire.lb_ref(self.region, lb)

    def _operation(
        self,
        resource: str,
        rtype: str,
        op: str,
        details: str = "",
        *,
        lb_name: str | None = None,
        delay: float = 0.0,
    ) -> dict[str, Any]:
        """Record one operation (``Started`` for ``delay`` seconds when ``delay`` > 0, else ``Succeeded``) and
        answer it as the wire shows it now."""
        now = self._clock.time()
        zone = f"{self.region}a" if rtype == INSTANCE_TYPE else "all"
        status = STARTED if delay > 0 else SUCCEEDED
        with self._db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO ls_operations (id, resource_name, resource_type, operation_type, details, lb_name, zone,"
                " created_at, due_at, status, status_changed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (str(uuid.uuid4()), resource, rtype, op, details, lb_name, zone, now, now + delay, status, now),
            )
            row = tx.execute("SELECT * FROM ls_operations WHERE seq = ?", (cur.lastrowid,)).fetchone()
        return wire.operation(self.region, OperationRecord.from_row(row), now)

    def _fail_pending_operations(self, lb_name: str, error_code: str, error_details: str) -> None:
        """Every operation of ``lb_name`` still ``Started`` now ends ``Failed`` with this error."""
        now = self._clock.time()
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE ls_operations SET status = ?, status_changed_at = ?, error_code = ?, error_details = ?"
                " WHERE lb_name = ? AND status = ? AND due_at > ?",
                (FAILED, now, error_code, error_details, lb_name, STARTED, now),
            )

    def _lb_state(self, lb: LoadBalancer) -> str:
        return lb.state(self._clock.time())

    # == shared steps =============================================================================

    def _https_enabled(self, lb: LoadBalancer) -> bool:
        """Whether the load balancer serves HTTPS: an ISSUED certificate is attached."""
        if lb.attached_certificate is None:
            return False
        cert = self._cert_or_none(lb.name, lb.attached_certificate)
        if cert is None:
            return False
        try:
            return self.certificates.status(self.certificates.describe(cert.acm_arn)) == "ISSUED"
        except NotFoundException:
            return False

    def _publish_instances(
        self,
        lb: LoadBalancer,
        *,
        attached: Sequence[str] = (),
        detached: Sequence[str] = (),
        changed: Sequence[str] = (),
    ) -> None:
        self._events.publish(
            LB_INSTANCES_CHANGED,
            {
                **self._lb_ref(lb),
                "attached": list(attached),
                "detached": list(detached),
                "changed": list(changed),
                "instances": sorted(self._attached(lb.name)),
            },
            [lb.principal_arn],
        )

    def _set_attributes(self, lb: LoadBalancer, new: Attributes, changed: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE ls_load_balancers SET attributes = ? WHERE name = ?", (json.dumps(new.to_json()), lb.name)
            )
            self._events.publish(
                LB_ATTRIBUTE_CHANGED,
                {
                    **self._lb_ref(lb),
                    "attributeName": changed,
                    "value": new.typed()[changed],
                    "attributes": new.typed(),
                },
                [lb.principal_arn],
            )

    def _new_certificate(
        self,
        lb_name: str,
        cert_name: str,
        domain_name: str,
        alternative_names: list[str] | None,
        tags: list[dict[str, str]] | None,
    ) -> None:
        """A certificate requested from ACM (DNS validation) and recorded on the load balancer."""
        attrs_mod.check_resource_name(cert_name, "certificate name")
        primary, alts = attrs_mod.certificate_names(domain_name, alternative_names)
        tag_list = attrs_mod.check_tags(tags)
        with self._lock, self._db.transaction():
            self._require_lb(lb_name)
            self._check_certificate_slot(lb_name, cert_name)
            acm_arn = self.certificates.request(primary, alts)
            self._insert_certificate(lb_name, cert_name, acm_arn, ORIGIN_LIGHTSAIL, tag_list)

    def _check_certificate_slot(self, lb_name: str, cert_name: str) -> None:
        certs = self._certs(lb_name)
        if any(c.name == cert_name for c in certs):
            raise InvalidInputException(f"A certificate with the name {cert_name} already exists on {lb_name}.")
        limit = self.limits.max_certificates_per_lb
        if len(certs) >= limit:
            raise InvalidInputException(
                f"The load balancer {lb_name} already has {limit} certificates, the maximum. Delete one first."
            )

    def _insert_certificate(
        self, lb_name: str, cert_name: str, acm_arn: str, origin: str, tags: list[dict[str, str]]
    ) -> None:
        cert = LbCertificate(lb_name, cert_name, str(uuid.uuid4()), acm_arn, origin, self._clock.time(), tags)
        with self._db.transaction() as tx:
            self._insert_certificate_row(tx, cert)

    def _detach(self, lb: LoadBalancer, *, reason: str) -> None:
        """Detach the attached certificate: its association and grant go (``reason``: detached | deleted |
        loadbalancer_deleted); HTTPS redirection is turned off with it, as Lightsail does."""
        assert lb.attached_certificate is not None
        cert = self._require_cert(lb.name, lb.attached_certificate)
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE ls_load_balancers SET attached_certificate = NULL, grant_id = NULL WHERE name = ?", (lb.name,)
            )
            self.certificates.disassociate(cert.acm_arn, self._lb_arn(lb))
            self._events.publish(
                LB_CERTIFICATE_DETACHED,
                {**self._lb_ref(lb), **wire.cert_ref(self.region, cert), "grantId": lb.grant_id, "reason": reason},
                [lb.principal_arn],
            )
            if lb.attributes.https_redirection_enabled and reason != "loadbalancer_deleted":
                # HTTPS is gone, so redirecting to it would break the site: Lightsail turns it off.
                self._set_attributes(
                    lb, dataclasses.replace(lb.attributes, https_redirection_enabled=False), HTTPS_REDIRECTION
                )

    def _drop_certificate(self, cert: LbCertificate) -> None:
        """The record goes; the ACM certificate too when Lightsail requested it (not one attached through the
        extension, nor one still in use elsewhere)."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ls_lb_certificates WHERE lb_name = ? AND name = ?", (cert.lb_name, cert.name))
            if cert.origin == ORIGIN_LIGHTSAIL:
                try:
                    self.certificates.delete(cert.acm_arn)
                except NotFoundException:
                    pass
                except OperationFailureException as exc:  # still in use elsewhere: leave it in ACM
                    log.info("ACM certificate %s kept: %s", cert.acm_arn, exc.message)
