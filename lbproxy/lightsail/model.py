"""``LightsailService``: load balancers, instances and load-balancer TLS certificates, in SQLite.

State lives in the control plane's database (tables ``ls_*``); every change and the event that reports
it are written in one transaction, so an event exists exactly when its change does. Methods answer in
Lightsail's wire shapes (lower-camel), which ``api`` returns as they are.

Who is who:
- each load balancer has its own principal, a role named after it (``arn:aws:iam::000000000000:role/NAME``),
  with a profile of the same name in ``DATA_DIR/credentials``; its data plane signs as it;
- attaching a certificate asks ACM (``CertificateBroker``) for the association and its KMS grant;
  swapping creates the new grant before the old one is retired; detaching, deleting the certificate
  and deleting the load balancer retire it.

Events (audience: the load balancer's principal ARN; the admin sees them all), in order on ``/events``:
``loadbalancer.created``, ``loadbalancer.instances_changed``, ``loadbalancer.attribute_changed``,
``loadbalancer.certificate_attached`` (``swapped`` when it replaced another), ``loadbalancer.certificate_detached``,
``loadbalancer.health_changed``, ``loadbalancer.deleted``. The key service adds ``grant.created`` /
``grant.retired`` / ``grant.revoked`` and ``key.*`` (the principal is the grantee) and ACM adds
``certificate.renewed`` (the principal is in the certificate's ``InUseBy`` audience).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lbproxy.config import ConfigError
from lbproxy.contract.dataplane import (
    CertificateEntry,
    DataPlaneConfig,
    DataPlaneReport,
    DocumentError,
    GrantEntry,
    InstanceEntry,
    KeyStateReport,
)
from lbproxy.contract.tlspolicies import TLS_POLICIES
from lbproxy.contract.vocabulary import (
    LB_ATTRIBUTE_CHANGED,
    LB_CERTIFICATE_ATTACHED,
    LB_CERTIFICATE_DETACHED,
    LB_CREATED,
    LB_DELETED,
    LB_HEALTH_CHANGED,
    LB_INSTANCES_CHANGED,
    LB_KEY_STATE_CHANGED,
)
from lbproxy.core.clock import Clock
from lbproxy.core.events import EventLog
from lbproxy.core.principals import ADMIN_NAME, Principal, Principals, role_arn
from lbproxy.core.store import Database
from lbproxy.lightsail import attributes as attrs_mod
from lbproxy.lightsail import metrics as metrics_mod
from lbproxy.lightsail.attributes import (
    HTTP_PORT,
    HTTPS_PORT,
    HTTPS_REDIRECTION,
    MAX_CERTIFICATES_PER_LOAD_BALANCER,
    Attributes,
    lightsail_arn,
    support_code,
)
from lbproxy.lightsail.certificates import CertificateBroker
from lbproxy.lightsail.errors import (
    AccessDeniedException,
    InvalidInputException,
    NotFoundException,
    OperationFailureException,
    not_found,
)
from lbproxy.lightsail.instances import InstanceAddress, check_instance_name, load_instances_file, parse_address

log = logging.getLogger("lbproxy.control")

_SCHEMA = """
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
    last_report_at REAL
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
    degraded TEXT
);
"""

#: What a data plane reports about its key (never key material): ``state`` and its time, the certificate's
#: ARN, serial and SHA-256 fingerprint; and its worker processes: how many serve and were asked for, how
#: many exited unasked (``restarts``), the last such exit, and why it is degraded (None: it is not).
#: ``loaded`` means a live worker process holds the key.
#: ``ls_key_states`` columns added after its first version (a data dir made before gets them on start).
_KEY_STATE_COLUMNS_ADDED = {
    "workers_expected": "INTEGER NOT NULL DEFAULT 0",
    "restarts": "INTEGER NOT NULL DEFAULT 0",
    "last_exit": "TEXT",
    "degraded": "TEXT",
}

SOURCE_FILE = "file"
SOURCE_API = "api"
#: A certificate Lightsail requested from ACM (deleted with it) / an existing ACM certificate attached
#: through the lbproxy extension (left in ACM when the Lightsail record goes).
ORIGIN_LIGHTSAIL = "lightsail"
ORIGIN_ACM = "acm"

LB_TYPE = "LoadBalancer"
CERT_TYPE = "LoadBalancerTlsCertificate"
INSTANCE_TYPE = "Instance"


@dataclasses.dataclass(frozen=True, slots=True)
class LoadBalancer:
    name: str
    id: str
    principal_arn: str
    instance_port: int
    created_at: float
    attributes: Attributes
    tags: list[dict[str, str]]
    ip_address_type: str
    dns_name: str
    attached_certificate: str | None
    grant_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class LbCertificate:
    lb_name: str
    name: str
    id: str
    acm_arn: str
    origin: str
    created_at: float
    tags: list[dict[str, str]]


class LightsailService:
    def __init__(
        self,
        db: Database,
        principals: Principals,
        events: EventLog,
        clock: Clock,
        certificates: CertificateBroker,
        settings: Any,
    ) -> None:
        self._db = db
        self._principals = principals
        self._events = events
        self._clock = clock
        self.certificates = certificates
        self.region: str = settings.region
        self._instances_file: Path | None = settings.instances_file
        self._lock = threading.RLock()
        db.ensure_schema(_SCHEMA)
        db.ensure_columns("ls_key_states", _KEY_STATE_COLUMNS_ADDED)
        if self._instances_file is not None:
            self.apply_instances_file(load_instances_file(self._instances_file))

    # == time-driven work =========================================================================

    def tick(self) -> None:
        """Drop metric samples older than the retention period."""
        cutoff = self._clock.time() - metrics_mod.RETENTION_SECONDS
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ls_metric_samples WHERE time < ?", (cutoff,))

    # == instances ================================================================================

    def reload_instances(self) -> None:
        """SIGHUP: re-read the instances file; a bad file is logged and changes nothing."""
        if self._instances_file is None:
            return
        try:
            entries = load_instances_file(self._instances_file)
        except ConfigError as exc:
            log.error("instances file not reloaded: %s", exc)
            return
        self.apply_instances_file(entries)
        log.info("instances reloaded from %s: %d instance(s)", self._instances_file, len(entries))

    def apply_instances_file(self, entries: Mapping[str, InstanceAddress]) -> None:
        """Make the file-sourced instances exactly ``entries`` (API-registered ones stay, unless the file
        names them: the file wins)."""
        with self._lock, self._db.transaction() as tx:
            current = {r["name"]: r for r in tx.execute("SELECT * FROM ls_instances WHERE source = ?", (SOURCE_FILE,))}
            for name in sorted(set(current) - set(entries)):
                self._remove_instance(name)
            for name, addr in entries.items():
                self._put_instance(name, addr, SOURCE_FILE)

    def register_instance(self, name: str, address: str) -> dict[str, Any]:
        """The lbproxy extension: register (or re-address) an instance by name."""
        try:
            check_instance_name(name)
            addr = parse_address(address)
        except ConfigError as exc:
            raise InvalidInputException(str(exc)) from None
        with self._lock, self._db.transaction():
            row = self._db.query_one("SELECT source FROM ls_instances WHERE name = ?", (name,))
            if row is not None and row["source"] == SOURCE_FILE:
                raise InvalidInputException(f"The instance {name} is defined in the instances file; edit it there.")
            self._put_instance(name, addr, SOURCE_API)
        return self.get_instance(name)

    def deregister_instance(self, name: str) -> None:
        with self._lock, self._db.transaction():
            row = self._db.query_one("SELECT source FROM ls_instances WHERE name = ?", (name,))
            if row is None:
                raise not_found("Instance", name)
            if row["source"] == SOURCE_FILE:
                raise InvalidInputException(f"The instance {name} is defined in the instances file; edit it there.")
            self._remove_instance(name)

    def _put_instance(self, name: str, addr: InstanceAddress, source: str) -> None:
        row = self._db.query_one("SELECT * FROM ls_instances WHERE name = ?", (name,))
        with self._db.transaction() as tx:
            if row is None:
                tx.execute(
                    "INSERT INTO ls_instances VALUES (?,?,?,?,?,?)",
                    (name, str(uuid.uuid4()), addr.host, addr.port, source, self._clock.time()),
                )
                return
            if (row["host"], row["port"], row["source"]) == (addr.host, addr.port, source):
                return
            tx.execute(
                "UPDATE ls_instances SET host = ?, port = ?, source = ? WHERE name = ?",
                (addr.host, addr.port, source, name),
            )
            if (row["host"], row["port"]) != (addr.host, addr.port):
                for lb in self._lbs_with_instance(name):
                    self._publish_instances(lb, changed=[name])

    def _remove_instance(self, name: str) -> None:
        with self._db.transaction() as tx:
            lbs = self._lbs_with_instance(name)
            tx.execute("DELETE FROM ls_lb_instances WHERE instance_name = ?", (name,))
            tx.execute("DELETE FROM ls_instances WHERE name = ?", (name,))
            for lb in lbs:
                self._publish_instances(lb, detached=[name])

    def _lbs_with_instance(self, name: str) -> list[LoadBalancer]:
        rows = self._db.query("SELECT lb_name FROM ls_lb_instances WHERE instance_name = ?", (name,))
        return [lb for r in rows if (lb := self._load_lb(r["lb_name"])) is not None]

    def get_instance(self, name: str) -> dict[str, Any]:
        row = self._db.query_one("SELECT * FROM ls_instances WHERE name = ?", (name,))
        if row is None:
            raise not_found("Instance", name)
        return self._instance_shape(row)

    def get_instances(self) -> list[dict[str, Any]]:
        return [self._instance_shape(r) for r in self._db.query("SELECT * FROM ls_instances ORDER BY name")]

    def list_instances_plain(self) -> list[dict[str, Any]]:
        """The extension's listing: name, address, where it came from."""
        rows = self._db.query("SELECT * FROM ls_instances ORDER BY name")
        return [
            {"name": r["name"], "address": str(InstanceAddress(r["host"], r["port"])), "source": r["source"]}
            for r in rows
        ]

    def _instance_shape(self, row: Any) -> dict[str, Any]:
        host, port = row["host"], row["port"]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        ports = [port] if port else [HTTP_PORT]
        shape: dict[str, Any] = {
            "name": row["name"],
            "arn": lightsail_arn(self.region, INSTANCE_TYPE, row["id"]),
            "supportCode": support_code(row["id"]),
            "createdAt": row["created_at"],
            "location": {"availabilityZone": f"{self.region}a", "regionName": self.region},
            "resourceType": INSTANCE_TYPE,
            "tags": [],
            "blueprintId": "lbproxy_backend",
            "blueprintName": "lbproxy registered instance",
            "bundleId": "lbproxy_local",
            "isStaticIp": False,
            "ipAddressType": "ipv6" if ip is not None and ip.version == 6 else "ipv4",
            "hardware": {"cpuCount": 1, "disks": [], "ramSizeInGb": 0.5},
            "networking": {
                "monthlyTransfer": {"gbPerMonthAllocated": 0},
                "ports": [
                    {
                        "fromPort": p,
                        "toPort": p,
                        "protocol": "tcp",
                        "accessFrom": "Anywhere (0.0.0.0/0 and ::/0)",
                        "accessType": "public",
                        "commonName": "",
                        "accessDirection": "inbound",
                        "cidrs": ["0.0.0.0/0"],
                        "ipv6Cidrs": ["::/0"],
                    }
                    for p in ports
                ],
            },
            "state": {"code": 16, "name": "running"},
            "username": "lbproxy",
        }
        if ip is not None and ip.version == 6:
            shape["ipv6Addresses"] = [host]
        else:
            shape["privateIpAddress"] = host
            shape["publicIpAddress"] = host
        return shape

    # == load balancers ===========================================================================

    def create_load_balancer(
        self,
        name: str,
        instance_port: int,
        *,
        health_check_path: str | None = None,
        certificate_name: str | None = None,
        certificate_domain_name: str | None = None,
        certificate_alternative_names: list[str] | None = None,
        tags: list[dict[str, str]] | None = None,
        ip_address_type: str | None = None,
        tls_policy_name: str | None = None,
    ) -> list[dict[str, Any]]:
        attrs_mod.check_resource_name(name, "load balancer name")
        if not 1 <= instance_port <= 65535:
            raise InvalidInputException(f"The instance port must be between 1 and 65535, got: {instance_port}")
        attributes = Attributes(
            health_check_path=attrs_mod.check_health_check_path(health_check_path or "/"),
            tls_policy_name=attrs_mod.check_tls_policy(tls_policy_name or attrs_mod.DEFAULT_POLICY_NAME),
        )
        if (certificate_name is None) != (certificate_domain_name is None) or (
            certificate_alternative_names and certificate_name is None
        ):
            raise InvalidInputException(
                "To create a certificate with the load balancer, specify both certificateName and "
                "certificateDomainName."
            )
        tag_list = _check_tags(tags)
        with self._lock, self._db.transaction() as tx:
            if self._load_lb(name) is not None:
                raise InvalidInputException(f"A load balancer with the name {name} already exists.")
            existing = self._principals.get(name)
            taken = existing is not None and (existing.kind != "role" or existing.arn != role_arn(name))
            if name == ADMIN_NAME or taken:
                raise InvalidInputException(
                    f"The name {name} is already used by a principal of this control plane; choose another."
                )
            principal = self._principals.ensure_role(name)
            lb_id = str(uuid.uuid4())
            dns = f"{name.lower().replace('_', '-')}-{lb_id[:8]}.{self.region}.elb.localhost"
            tx.execute(
                "INSERT INTO ls_load_balancers VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL,NULL)",
                (
                    name,
                    lb_id,
                    principal.arn,
                    instance_port,
                    self._clock.time(),
                    json.dumps(attributes.to_json()),
                    json.dumps(tag_list),
                    ip_address_type or "dualstack",
                    dns,
                ),
            )
            lb = self._require_lb(name)
            self._events.publish(LB_CREATED, self._lb_ref(lb), [lb.principal_arn])
            ops = [self._operation(name, LB_TYPE, "CreateLoadBalancer")]
            if certificate_name is not None and certificate_domain_name is not None:
                ops += self.create_certificate(
                    name, certificate_name, certificate_domain_name, certificate_alternative_names, None
                )
        return ops

    def delete_load_balancer(self, name: str) -> list[dict[str, Any]]:
        """Delete it with all its certificates: every grant it held is retired, its principal removed."""
        with self._lock:
            lb = self._require_lb(name)
            ops = []
            with self._db.transaction() as tx:
                if lb.attached_certificate is not None:
                    self._detach(lb, reason="loadbalancer_deleted")
                for cert in self._certs(name):
                    self._drop_certificate(cert)
                    ops.append(self._operation(cert.name, CERT_TYPE, "DeleteLoadBalancerTlsCertificate", name))
                tx.execute("DELETE FROM ls_metric_samples WHERE lb_name = ?", (name,))
                tx.execute("DELETE FROM ls_load_balancers WHERE name = ?", (name,))
                self._events.publish(LB_DELETED, self._lb_ref(lb), [lb.principal_arn])
            principal = self._principals.get(name)
            if principal is not None and principal.kind == "role" and principal.arn == lb.principal_arn:
                self._principals.delete(name)
        return [self._operation(name, LB_TYPE, "DeleteLoadBalancer"), *ops]

    def get_load_balancer(self, name: str) -> dict[str, Any]:
        return self._lb_shape(self._require_lb(name))

    def get_load_balancers(self) -> list[dict[str, Any]]:
        rows = self._db.query("SELECT name FROM ls_load_balancers ORDER BY name")
        return [self._lb_shape(self._require_lb(r["name"])) for r in rows]

    def attach_instances(self, lb_name: str, instance_names: Sequence[str]) -> list[dict[str, Any]]:
        if not instance_names:
            raise InvalidInputException("Specify at least one instance name.")
        with self._lock, self._db.transaction() as tx:
            lb = self._require_lb(lb_name)
            for n in instance_names:
                if self._db.query_one("SELECT 1 FROM ls_instances WHERE name = ?", (n,)) is None:
                    raise not_found("Instance", n)
            attached = []
            for n in dict.fromkeys(instance_names):
                cur = tx.execute(
                    "INSERT OR IGNORE INTO ls_lb_instances VALUES (?,?,?,?,?)",
                    (lb_name, n, self._clock.time(), "initial", "Lb.RegistrationInProgress"),
                )
                if cur.rowcount:
                    attached.append(n)
            if attached:
                self._publish_instances(lb, attached=attached)
        return [
            self._operation(n, INSTANCE_TYPE, "AttachInstancesToLoadBalancer", lb_name)
            for n in dict.fromkeys(instance_names)
        ] + [self._operation(lb_name, LB_TYPE, "AttachInstancesToLoadBalancer", ", ".join(instance_names))]

    def detach_instances(self, lb_name: str, instance_names: Sequence[str]) -> list[dict[str, Any]]:
        if not instance_names:
            raise InvalidInputException("Specify at least one instance name.")
        with self._lock, self._db.transaction() as tx:
            lb = self._require_lb(lb_name)
            current = self._attached_names(lb_name)
            for n in instance_names:
                if n not in current:
                    raise InvalidInputException(f"The instance {n} is not attached to the load balancer {lb_name}.")
            names = list(dict.fromkeys(instance_names))
            tx.executemany(
                "DELETE FROM ls_lb_instances WHERE lb_name = ? AND instance_name = ?", [(lb_name, n) for n in names]
            )
            self._publish_instances(lb, detached=names)
        return [self._operation(n, INSTANCE_TYPE, "DetachInstancesFromLoadBalancer", lb_name) for n in names] + [
            self._operation(lb_name, LB_TYPE, "DetachInstancesFromLoadBalancer", ", ".join(names))
        ]

    def update_attribute(self, lb_name: str, name: str, value: str) -> list[dict[str, Any]]:
        with self._lock, self._db.transaction():
            lb = self._require_lb(lb_name)
            new = attrs_mod.updated(lb.attributes, name, value)
            if name == HTTPS_REDIRECTION and new.https_redirection_enabled and not self._https_enabled(lb):
                raise InvalidInputException(
                    "HTTPS redirection requires a valid TLS certificate attached to the load balancer."
                )
            if new != lb.attributes:
                self._set_attributes(lb, new, name)
        return [self._operation(lb_name, LB_TYPE, "UpdateLoadBalancerAttribute", f"{name}={value}")]

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

    @staticmethod
    def tls_policies() -> list[dict[str, Any]]:
        return [p.to_api() for p in TLS_POLICIES.values()]

    # == TLS certificates =========================================================================

    def create_certificate(
        self,
        lb_name: str,
        cert_name: str,
        domain_name: str,
        alternative_names: list[str] | None,
        tags: list[dict[str, str]] | None,
    ) -> list[dict[str, Any]]:
        """CreateLoadBalancerTlsCertificate: ACM is asked for a certificate (DNS validation)."""
        attrs_mod.check_resource_name(cert_name, "certificate name")
        primary, alts = attrs_mod.certificate_names(domain_name, alternative_names)
        tag_list = _check_tags(tags)
        with self._lock, self._db.transaction():
            self._require_lb(lb_name)
            self._check_certificate_slot(lb_name, cert_name)
            acm_arn = self.certificates.request(primary, alts)
            self._insert_certificate(lb_name, cert_name, acm_arn, ORIGIN_LIGHTSAIL, tag_list)
        return [self._operation(cert_name, CERT_TYPE, "CreateLoadBalancerTlsCertificate", lb_name)]

    def add_acm_certificate(self, lb_name: str, cert_name: str, acm_arn: str) -> dict[str, Any]:
        """The lbproxy extension: wrap an existing (e.g. imported) ACM certificate as a load-balancer
        TLS certificate, so it can be attached like any other. Real Lightsail cannot do this."""
        attrs_mod.check_resource_name(cert_name, "certificate name")
        with self._lock, self._db.transaction():
            self._require_lb(lb_name)
            self._check_certificate_slot(lb_name, cert_name)
            if not self.certificates.exists(acm_arn):
                raise not_found("Certificate", acm_arn)
            self._insert_certificate(lb_name, cert_name, acm_arn, ORIGIN_ACM, [])
        return self._cert_shape(self._require_cert(lb_name, cert_name))

    def _check_certificate_slot(self, lb_name: str, cert_name: str) -> None:
        certs = self._certs(lb_name)
        if any(c.name == cert_name for c in certs):
            raise InvalidInputException(f"A certificate with the name {cert_name} already exists on {lb_name}.")
        if len(certs) >= MAX_CERTIFICATES_PER_LOAD_BALANCER:
            raise InvalidInputException(
                f"The load balancer {lb_name} already has {MAX_CERTIFICATES_PER_LOAD_BALANCER} certificates, the "
                "maximum. Delete one first."
            )

    def _insert_certificate(
        self, lb_name: str, cert_name: str, acm_arn: str, origin: str, tags: list[dict[str, str]]
    ) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO ls_lb_certificates VALUES (?,?,?,?,?,?,?)",
                (lb_name, cert_name, str(uuid.uuid4()), acm_arn, origin, self._clock.time(), json.dumps(tags)),
            )

    def get_certificates(self, lb_name: str) -> list[dict[str, Any]]:
        self._require_lb(lb_name)
        return [self._cert_shape(c) for c in self._certs(lb_name)]

    def attach_certificate(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        """Attach (or swap to) a certificate: its grant is created first, then the previous one's retired."""
        with self._lock, self._db.transaction() as tx:
            lb = self._require_lb(lb_name)
            cert = self._require_cert(lb_name, cert_name)
            detail = self.certificates.describe(cert.acm_arn)
            status = self.certificates.status(detail)
            if status != "ISSUED":
                raise InvalidInputException(
                    f"The certificate {cert_name} is not valid (status {status}); only an ISSUED certificate can "
                    "be attached."
                )
            previous = self._cert_or_none(lb_name, lb.attached_certificate) if lb.attached_certificate else None
            lb_arn = self._lb_arn(lb)
            if previous is not None and previous.name == cert.name:
                ref = self.certificates.grant(cert.acm_arn, lb_arn, lb.grant_id or "")
                if ref is not None and ref.active:
                    return self._attach_ops(lb_name, cert_name)
            ref = self.certificates.associate(cert.acm_arn, lb_arn, lb.principal_arn)
            tx.execute(
                "UPDATE ls_load_balancers SET attached_certificate = ?, grant_id = ? WHERE name = ?",
                (cert.name, ref.grant_id, lb_name),
            )
            swapped = previous is not None and previous.name != cert.name
            self._events.publish(
                LB_CERTIFICATE_ATTACHED,
                {
                    **self._lb_ref(lb),
                    **self._cert_ref(lb, cert),
                    "grantId": ref.grant_id,
                    "keyArn": ref.key_arn,
                    "swapped": swapped,
                    "previousCertificateName": previous.name if swapped and previous else None,
                },
                [lb.principal_arn],
            )
            if swapped and previous is not None:
                self.certificates.disassociate(previous.acm_arn, lb_arn)
        return self._attach_ops(lb_name, cert_name)

    def _attach_ops(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        return [
            self._operation(lb_name, LB_TYPE, "AttachLoadBalancerTlsCertificate", cert_name),
            self._operation(cert_name, CERT_TYPE, "AttachLoadBalancerTlsCertificate", lb_name),
        ]

    def detach_certificate(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        """The lbproxy extension: detach the attached certificate without deleting it (grant retired)."""
        with self._lock, self._db.transaction():
            lb = self._require_lb(lb_name)
            self._require_cert(lb_name, cert_name)
            if lb.attached_certificate != cert_name:
                raise InvalidInputException(f"The certificate {cert_name} is not attached to {lb_name}.")
            self._detach(lb, reason="detached")
        return [self._operation(lb_name, LB_TYPE, "AttachLoadBalancerTlsCertificate", f"detached {cert_name}")]

    def delete_certificate(self, lb_name: str, cert_name: str, force: bool) -> list[dict[str, Any]]:
        with self._lock, self._db.transaction():
            lb = self._require_lb(lb_name)
            cert = self._require_cert(lb_name, cert_name)
            if lb.attached_certificate == cert_name:
                if not force:
                    raise InvalidInputException(
                        f"The certificate {cert_name} is attached to the load balancer {lb_name}. Use force to "
                        "delete it anyway (HTTPS stops)."
                    )
                self._detach(lb, reason="deleted")
            self._drop_certificate(cert)
        return [self._operation(cert_name, CERT_TYPE, "DeleteLoadBalancerTlsCertificate", lb_name)]

    def _detach(self, lb: LoadBalancer, *, reason: str) -> None:
        assert lb.attached_certificate is not None
        cert = self._require_cert(lb.name, lb.attached_certificate)
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE ls_load_balancers SET attached_certificate = NULL, grant_id = NULL WHERE name = ?", (lb.name,)
            )
            self.certificates.disassociate(cert.acm_arn, self._lb_arn(lb))
            self._events.publish(
                LB_CERTIFICATE_DETACHED,
                {**self._lb_ref(lb), **self._cert_ref(lb, cert), "grantId": lb.grant_id, "reason": reason},
                [lb.principal_arn],
            )
            if lb.attributes.https_redirection_enabled and reason != "loadbalancer_deleted":
                # HTTPS is gone, so redirecting to it would break the site: Lightsail turns it off.
                self._set_attributes(
                    lb, dataclasses.replace(lb.attributes, https_redirection_enabled=False), HTTPS_REDIRECTION
                )

    def _drop_certificate(self, cert: LbCertificate) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ls_lb_certificates WHERE lb_name = ? AND name = ?", (cert.lb_name, cert.name))
            if cert.origin == ORIGIN_LIGHTSAIL:
                try:
                    self.certificates.delete(cert.acm_arn)
                except NotFoundException:
                    pass
                except OperationFailureException as exc:  # still in use elsewhere: leave it in ACM
                    log.info("ACM certificate %s kept: %s", cert.acm_arn, exc.message)

    # == the data plane ===========================================================================

    def authorize_data_plane(self, principal: Principal, lb_name: str) -> LoadBalancer:
        """The load balancer's own principal (or the admin) may read it; anyone else gets AccessDenied,
        whether or not the load balancer exists."""
        lb = self._load_lb(lb_name)
        if principal.is_admin:
            if lb is None:
                raise not_found("LoadBalancer", lb_name)
            return lb
        if lb is None or principal.arn != lb.principal_arn:
            raise AccessDeniedException(
                f"User: {principal.arn} is not authorized to read the data-plane configuration of load balancer "
                f"{lb_name}"
            )
        return lb

    def data_plane_config(self, principal: Principal, lb_name: str) -> DataPlaneConfig:
        """``GET /dataplane/v1/load-balancers/{name}`` (the document: ``contract.dataplane``)."""
        with self._lock:
            last_event_id = self._events.last_id()  # read first: the snapshot is at least this new
            lb = self.authorize_data_plane(principal, lb_name)
            https = self._https_enabled(lb)
            instances = tuple(
                InstanceEntry(
                    row["instance_name"], row["host"], row["port"] or lb.instance_port, row["state"], row["reason"]
                )
                for row in self._db.query(
                    "SELECT li.instance_name, li.state, li.reason, i.host, i.port FROM ls_lb_instances li "
                    "JOIN ls_instances i ON i.name = li.instance_name WHERE li.lb_name = ? ORDER BY li.instance_name",
                    (lb.name,),
                )
            )
            return DataPlaneConfig(
                name=lb.name,
                arn=self._lb_arn(lb),
                principal_arn=lb.principal_arn,
                state="active",
                instance_port=lb.instance_port,
                http_port=HTTP_PORT,
                https_port=HTTPS_PORT,
                https_enabled=https,
                attributes=lb.attributes.typed(),
                instances=instances,
                certificate=self._data_plane_certificate(lb) if https else None,
                last_event_id=last_event_id,
            )

    def _data_plane_certificate(self, lb: LoadBalancer) -> CertificateEntry:
        assert lb.attached_certificate is not None
        cert = self._require_cert(lb.name, lb.attached_certificate)
        lb_arn = self._lb_arn(lb)
        ref = self.certificates.grant(cert.acm_arn, lb_arn, lb.grant_id or "")
        bundle = self.certificates.bundle(cert.acm_arn, lb_arn)
        grant = None
        if ref is not None:
            grant = GrantEntry(ref.grant_id, ref.token, ref.key_arn, "IssuedThroughACM", ref.active)
        return CertificateEntry(
            name=cert.name,
            arn=lightsail_arn(self.region, CERT_TYPE, cert.id),
            acm_certificate_arn=cert.acm_arn,
            certificate_pem=bundle.get("Certificate") or "",
            chain_pem=bundle.get("CertificateChain") or "",
            encryption_context=self.certificates.context(cert.acm_arn, lb_arn),
            bundle=bundle,
            grant=grant,
            kms_key_arn=bundle.get("KeyId") or (ref.key_arn if ref else None),
        )

    def report(self, principal: Principal, lb_name: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /dataplane/v1/load-balancers/{name}/report``: health states and metric deltas."""
        try:
            report = DataPlaneReport.from_json(doc)
        except DocumentError as exc:
            raise InvalidInputException(str(exc)) from None
        now = self._clock.time()
        health = {i.name: (i.state, i.reason_code) for i in report.instances}
        samples = metrics_mod.samples_from_report(report.metrics, now)
        key_state = report.key_state
        with self._lock, self._db.transaction() as tx:
            lb = self.authorize_data_plane(principal, lb_name)
            attached = self._attached_rows(lb.name)
            changed, ignored = [], []
            for name, (state, reason) in health.items():
                if name not in attached:
                    ignored.append(name)
                    continue
                if (attached[name]["state"], attached[name]["reason"]) != (state, reason):
                    tx.execute(
                        "UPDATE ls_lb_instances SET state = ?, reason = ? WHERE lb_name = ? AND instance_name = ?",
                        (state, reason, lb.name, name),
                    )
                    changed.append({"name": name, "state": state, "reasonCode": reason})
            tx.executemany(
                "INSERT INTO ls_metric_samples VALUES (?,?,?,?,?,?,?)",
                [(lb.name, s.metric, s.time, s.sum, s.count, s.minimum, s.maximum) for s in samples],
            )
            tx.execute("UPDATE ls_load_balancers SET last_report_at = ? WHERE name = ?", (now, lb.name))
            if changed:
                self._events.publish(LB_HEALTH_CHANGED, {**self._lb_ref(lb), "instances": changed}, [lb.principal_arn])
            if key_state is not None:
                self._store_key_state(tx, lb, key_state, now)
        return {
            "accepted": {"instances": len(health) - len(ignored), "samples": len(samples)},
            "ignoredInstances": ignored,
            "lastEventId": self._events.last_id(),
        }

    def _store_key_state(self, tx: Any, lb: LoadBalancer, ks: KeyStateReport, now: float) -> None:
        prev = tx.execute(
            "SELECT state, since, fingerprint, degraded, restarts FROM ls_key_states WHERE lb_name = ?", (lb.name,)
        ).fetchone()
        tx.execute(
            "INSERT OR REPLACE INTO ls_key_states (lb_name, state, since, certificate_arn, serial, fingerprint,"
            " workers, reported_at, workers_expected, restarts, last_exit, degraded)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (lb.name, ks.state, ks.since, ks.certificate_arn, ks.serial, ks.fingerprint, ks.workers, now,
             ks.workers_expected, ks.restarts, ks.last_exit, ks.degraded),
        )  # fmt: skip
        if prev is None or (prev["state"], prev["fingerprint"], prev["degraded"], prev["restarts"]) != (
            ks.state, ks.fingerprint, ks.degraded, ks.restarts
        ):  # fmt: skip
            # Admin-only audience: the dashboard follows it; the data plane needs no echo of itself.
            self._events.publish(LB_KEY_STATE_CHANGED, {**self._lb_ref(lb), "keyState": ks.to_json()}, [])

    def key_states(self) -> dict[str, dict[str, Any]]:
        """Each data plane's last reported key state, by load-balancer name (for the dashboard)."""
        return {
            r["lb_name"]: {
                "state": r["state"],
                "since": r["since"],
                "certificateArn": r["certificate_arn"],
                "serial": r["serial"],
                "fingerprint": r["fingerprint"],
                "workers": r["workers"],
                "workersExpected": r["workers_expected"],
                "restarts": r["restarts"],
                "lastExit": r["last_exit"],
                "degraded": r["degraded"],
                "reportedAt": r["reported_at"],
            }
            for r in self._db.query("SELECT * FROM ls_key_states ORDER BY lb_name")
        }

    def metric_data(
        self, lb_name: str, metric: str, period: int, start: float, end: float, unit: str, statistics: list[str]
    ) -> list[dict[str, Any]]:
        self._require_lb(lb_name)
        metrics_mod.check_query(metric, period, start, end)
        rows = self._db.query(
            "SELECT * FROM ls_metric_samples WHERE lb_name = ? AND metric = ? AND time >= ? AND time < ?",
            (lb_name, metric, start, end),
        )
        samples = [
            metrics_mod.Sample(r["metric"], r["time"], r["sum"], r["count"], r["minimum"], r["maximum"]) for r in rows
        ]
        return metrics_mod.aggregate(
            samples, metric=metric, period=period, start=start, end=end, unit=unit, statistics=statistics
        )

    # == shapes ===================================================================================

    def _lb_shape(self, lb: LoadBalancer) -> dict[str, Any]:
        https = self._https_enabled(lb)
        health = []
        for name, row in self._attached_rows(lb.name).items():
            entry = {"instanceName": name, "instanceHealth": row["state"]}
            if row["reason"]:
                entry["instanceHealthReason"] = row["reason"]
            health.append(entry)
        return {
            "name": lb.name,
            "arn": self._lb_arn(lb),
            "supportCode": support_code(lb.id),
            "createdAt": lb.created_at,
            "location": {"availabilityZone": "all", "regionName": self.region},
            "resourceType": LB_TYPE,
            "tags": lb.tags,
            "dnsName": lb.dns_name,
            "state": "active",
            "protocol": "HTTP_HTTPS" if https else "HTTP",
            "publicPorts": [HTTP_PORT, HTTPS_PORT] if https else [HTTP_PORT],
            "healthCheckPath": lb.attributes.health_check_path,
            "instancePort": lb.instance_port,
            "instanceHealthSummary": health,
            "tlsCertificateSummaries": [
                {"name": c.name, "isAttached": c.name == lb.attached_certificate} for c in self._certs(lb.name)
            ],
            "configurationOptions": lb.attributes.configuration_options(),
            "ipAddressType": lb.ip_address_type,
            "httpsRedirectionEnabled": lb.attributes.https_redirection_enabled,
            "tlsPolicyName": lb.attributes.tls_policy_name,
        }

    def _cert_shape(self, cert: LbCertificate) -> dict[str, Any]:
        lb = self._require_lb(cert.lb_name)
        d = self.certificates.describe(cert.acm_arn)
        status = self.certificates.status(d)
        shape: dict[str, Any] = {
            "name": cert.name,
            "arn": lightsail_arn(self.region, CERT_TYPE, cert.id),
            "supportCode": support_code(cert.id),
            "createdAt": cert.created_at,
            "location": {"availabilityZone": "all", "regionName": self.region},
            "resourceType": CERT_TYPE,
            "tags": cert.tags,
            "loadBalancerName": cert.lb_name,
            "isAttached": lb.attached_certificate == cert.name,
            "status": status,
            "domainName": d.get("DomainName"),
            "subjectAlternativeNames": list(d.get("SubjectAlternativeNames", [])),
        }
        records = []
        for opt in d.get("DomainValidationOptions", []) or []:
            rr = opt.get("ResourceRecord") or {}
            rec: dict[str, Any] = {
                "domainName": opt.get("DomainName"),
                "validationStatus": opt.get("ValidationStatus", "PENDING_VALIDATION"),
            }
            if rr:
                rec.update({"name": rr.get("Name"), "type": rr.get("Type"), "value": rr.get("Value")})
                rec["dnsRecordCreationState"] = {"code": "SUCCEEDED"}
            records.append(rec)
        if records:
            shape["domainValidationRecords"] = records
        if d.get("FailureReason"):
            reason = d["FailureReason"]
            shape["failureReason"] = (
                reason
                if reason
                in (
                    "NO_AVAILABLE_CONTACTS",
                    "ADDITIONAL_VERIFICATION_REQUIRED",
                    "DOMAIN_NOT_ALLOWED",
                    "INVALID_PUBLIC_DOMAIN",
                )
                else "OTHER"
            )
        for src, dst in (
            ("IssuedAt", "issuedAt"),
            ("ImportedAt", "issuedAt"),
            ("NotAfter", "notAfter"),
            ("NotBefore", "notBefore"),
        ):
            if d.get(src) is not None and dst not in shape:
                shape[dst] = d[src]
        for src, dst in (
            ("Issuer", "issuer"),
            ("KeyAlgorithm", "keyAlgorithm"),
            ("Serial", "serial"),
            ("SignatureAlgorithm", "signatureAlgorithm"),
            ("Subject", "subject"),
        ):
            if d.get(src):
                shape[dst] = d[src]
        renewal = d.get("RenewalSummary")
        if renewal:
            shape["renewalSummary"] = {
                "renewalStatus": renewal.get("RenewalStatus"),
                "domainValidationOptions": [
                    {"domainName": o.get("DomainName"), "validationStatus": o.get("ValidationStatus")}
                    for o in renewal.get("DomainValidationOptions", [])
                ],
            }
        return shape

    def _operation(self, resource: str, rtype: str, op: str, details: str = "") -> dict[str, Any]:
        now = self._clock.time()
        out: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "resourceName": resource,
            "resourceType": rtype,
            "createdAt": now,
            "location": {
                "availabilityZone": "all" if rtype != INSTANCE_TYPE else f"{self.region}a",
                "regionName": self.region,
            },
            "isTerminal": True,
            "operationType": op,
            "status": "Succeeded",
            "statusChangedAt": now,
        }
        if details:
            out["operationDetails"] = details
        return out

    # == internals ================================================================================

    def _lb_arn(self, lb: LoadBalancer) -> str:
        return lightsail_arn(self.region, LB_TYPE, lb.id)

    def _lb_ref(self, lb: LoadBalancer) -> dict[str, Any]:
        return {"loadBalancerName": lb.name, "loadBalancerArn": self._lb_arn(lb), "principalArn": lb.principal_arn}

    def _cert_ref(self, lb: LoadBalancer, cert: LbCertificate) -> dict[str, Any]:
        return {
            "certificateName": cert.name,
            "certificateArn": lightsail_arn(self.region, CERT_TYPE, cert.id),
            "acmCertificateArn": cert.acm_arn,
        }

    def _https_enabled(self, lb: LoadBalancer) -> bool:
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
                "instances": sorted(self._attached_names(lb.name)),
            },
            [lb.principal_arn],
        )

    def _attached_names(self, lb_name: str) -> set[str]:
        return set(self._attached_rows(lb_name))

    def _attached_rows(self, lb_name: str) -> dict[str, Any]:
        rows = self._db.query("SELECT * FROM ls_lb_instances WHERE lb_name = ? ORDER BY instance_name", (lb_name,))
        return {r["instance_name"]: r for r in rows}

    def _load_lb(self, name: str) -> LoadBalancer | None:
        r = self._db.query_one("SELECT * FROM ls_load_balancers WHERE name = ?", (name,))
        if r is None:
            return None
        return LoadBalancer(
            name=r["name"],
            id=r["id"],
            principal_arn=r["principal_arn"],
            instance_port=r["instance_port"],
            created_at=r["created_at"],
            attributes=Attributes.from_json(json.loads(r["attributes"])),
            tags=json.loads(r["tags"]),
            ip_address_type=r["ip_address_type"],
            dns_name=r["dns_name"],
            attached_certificate=r["attached_certificate"],
            grant_id=r["grant_id"],
        )

    def _require_lb(self, name: str) -> LoadBalancer:
        lb = self._load_lb(name)
        if lb is None:
            raise not_found("LoadBalancer", name)
        return lb

    def _certs(self, lb_name: str) -> list[LbCertificate]:
        rows = self._db.query(
            "SELECT * FROM ls_lb_certificates WHERE lb_name = ? ORDER BY created_at, name", (lb_name,)
        )
        return [_cert_from_row(r) for r in rows]

    def _cert_or_none(self, lb_name: str, name: str | None) -> LbCertificate | None:
        r = self._db.query_one("SELECT * FROM ls_lb_certificates WHERE lb_name = ? AND name = ?", (lb_name, name))
        return _cert_from_row(r) if r else None

    def _require_cert(self, lb_name: str, name: str) -> LbCertificate:
        cert = self._cert_or_none(lb_name, name)
        if cert is None:
            raise not_found("LoadBalancerTlsCertificate", name)
        return cert


def _cert_from_row(r: Any) -> LbCertificate:
    return LbCertificate(
        r["lb_name"], r["name"], r["id"], r["acm_arn"], r["origin"], r["created_at"], json.loads(r["tags"])
    )


def _check_tags(tags: list[dict[str, str]] | None) -> list[dict[str, str]]:
    out = []
    for t in tags or []:
        key = t.get("key")
        if not key:
            raise InvalidInputException("Each tag needs a key.")
        out.append({"key": key, "value": t.get("value", "")})
    if len(out) > attrs_mod.MAX_TAGS:
        raise InvalidInputException(f"A resource can have at most {attrs_mod.MAX_TAGS} tags.")
    return out
