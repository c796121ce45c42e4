"""Lightsail's records, pure: what one row of each table holds, typed (the tables are in ``store``).

- ``Instance``        an instance (``ls_instances``): its address, and whether the instances file or the
                      API registered it.
- ``LoadBalancer``    a load balancer (``ls_load_balancers``): its principal, typed attributes, the attached
                      certificate and the KMS grant that lets its data plane decrypt that certificate's key.
- ``Attachment``      an instance attached to a load balancer (``ls_lb_instances``) with its health as the
                      data plane last reported it.
- ``LbCertificate``   a load-balancer TLS certificate (``ls_lb_certificates``) and the ACM certificate it wraps.
- ``OperationRecord`` one Lightsail operation (``ls_operations``): what every change answers with and
                      ``GetOperation`` reads back, ``Started`` until it is due, then ``Succeeded`` (or ``Failed``).
- ``KeyStateRecord``  what a load balancer's data plane last reported about its key and its worker processes
                      (``ls_key_states``; never key material).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from lbproxy.contract.dataplane import KeyStateReport
from lbproxy.lightsail.attributes import Attributes

#: Where an instance came from: the ``--instances`` file (edited there) or lbproxy's API extension.
SOURCE_FILE = "file"
SOURCE_API = "api"
#: A certificate Lightsail requested from ACM (deleted with it) / an existing ACM certificate attached
#: through the lbproxy extension (left in ACM when the Lightsail record goes).
ORIGIN_LIGHTSAIL = "lightsail"
ORIGIN_ACM = "acm"

#: Lightsail's resource types (ARNs, ``resourceType``, operations).
LB_TYPE = "LoadBalancer"
CERT_TYPE = "LoadBalancerTlsCertificate"
INSTANCE_TYPE = "Instance"

#: Lightsail's ``OperationStatus`` values lbproxy uses (``NotStarted`` and ``Completed`` it never reports).
STARTED, SUCCEEDED, FAILED = "Started", "Succeeded", "Failed"
#: Lightsail's ``LoadBalancerState`` values lbproxy reports.
PROVISIONING, ACTIVE = "provisioning", "active"

Row = sqlite3.Row


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    name: str
    id: str
    host: str
    #: ``None``: the address gave no port; the load balancer's ``instancePort`` applies.
    port: int | None
    source: str
    created_at: float

    @classmethod
    def from_row(cls, r: Row) -> Instance:
        return cls(r["name"], r["id"], r["host"], r["port"], r["source"], r["created_at"])


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
    #: Until when it is ``provisioning`` (its CreateLoadBalancer operation ``Started``); 0: active from the start.
    ready_at: float = 0.0

    def state(self, now: float) -> str:
        return PROVISIONING if now < self.ready_at else ACTIVE

    @classmethod
    def from_row(cls, r: Row) -> LoadBalancer:
        return cls(
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
            ready_at=r["ready_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    lb_name: str
    instance_name: str
    attached_at: float
    #: Lightsail's ``InstanceHealthState`` and ``InstanceHealthReason`` (None: no reason).
    state: str
    reason: str | None

    @classmethod
    def from_row(cls, r: Row) -> Attachment:
        return cls(r["lb_name"], r["instance_name"], r["attached_at"], r["state"], r["reason"])


@dataclasses.dataclass(frozen=True, slots=True)
class LbCertificate:
    lb_name: str
    name: str
    id: str
    acm_arn: str
    origin: str
    created_at: float
    tags: list[dict[str, str]]

    @classmethod
    def from_row(cls, r: Row) -> LbCertificate:
        return cls(r["lb_name"], r["name"], r["id"], r["acm_arn"], r["origin"], r["created_at"], json.loads(r["tags"]))


@dataclasses.dataclass(frozen=True, slots=True)
class OperationRecord:
    """One operation as stored: ``status`` is what was decided when it was recorded (``Started`` with the time
    it is due, ``Succeeded`` at once, or ``Failed`` with its error); ``status_at(now)`` is what it is now."""

    seq: int
    id: str
    resource_name: str
    resource_type: str
    operation_type: str
    details: str
    #: The load balancer the operation concerns (its pending operations fail if it goes first).
    lb_name: str | None
    zone: str
    created_at: float
    #: When a ``Started`` operation becomes ``Succeeded``.
    due_at: float
    status: str
    status_changed_at: float
    error_code: str | None
    error_details: str | None

    def status_at(self, now: float) -> tuple[str, float]:
        """``(status, statusChangedAt)`` at ``now``: a ``Started`` operation whose time has come succeeded then."""
        if self.status == STARTED and now >= self.due_at:
            return SUCCEEDED, self.due_at
        return self.status, self.status_changed_at

    @classmethod
    def from_row(cls, r: Row) -> OperationRecord:
        return cls(
            seq=r["seq"],
            id=r["id"],
            resource_name=r["resource_name"],
            resource_type=r["resource_type"],
            operation_type=r["operation_type"],
            details=r["details"],
            lb_name=r["lb_name"],
            zone=r["zone"],
            created_at=r["created_at"],
            due_at=r["due_at"],
            status=r["status"],
            status_changed_at=r["status_changed_at"],
            error_code=r["error_code"],
            error_details=r["error_details"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class KeyStateRecord:
    """A data plane's last key-state report (``contract.dataplane.KeyStateReport``) and when it came.

    ``state``: ``loaded`` (a live worker process holds the key), ``wiped`` or ``none``; the certificate's ACM
    ARN, serial and SHA-256 fingerprint; how many worker processes serve and were asked for, how many exited
    unasked (``restarts``), the last such exit, and why the data plane is degraded (None: it is not)."""

    lb_name: str
    state: str
    since: float
    certificate_arn: str | None
    serial: str | None
    fingerprint: str | None
    workers: int
    workers_expected: int
    restarts: int
    last_exit: str | None
    degraded: str | None
    reported_at: float
    #: Where the data plane listens (``contract.dataplane.KeyStateReport.listeners``).
    listeners: tuple[str, ...] = ()

    @classmethod
    def from_report(cls, lb_name: str, ks: KeyStateReport, reported_at: float) -> KeyStateRecord:
        return cls(
            lb_name=lb_name,
            state=ks.state,
            since=ks.since,
            certificate_arn=ks.certificate_arn,
            serial=ks.serial,
            fingerprint=ks.fingerprint,
            workers=ks.workers,
            workers_expected=ks.workers_expected,
            restarts=ks.restarts,
            last_exit=ks.last_exit,
            degraded=ks.degraded,
            reported_at=reported_at,
            listeners=ks.listeners,
        )

    @classmethod
    def from_row(cls, r: Row) -> KeyStateRecord:
        return cls(
            lb_name=r["lb_name"],
            state=r["state"],
            since=r["since"],
            certificate_arn=r["certificate_arn"],
            serial=r["serial"],
            fingerprint=r["fingerprint"],
            workers=r["workers"],
            workers_expected=r["workers_expected"],
            restarts=r["restarts"],
            last_exit=r["last_exit"],
            degraded=r["degraded"],
            reported_at=r["reported_at"],
            listeners=tuple(json.loads(r["listeners"] or "[]")),
        )

    def differs_from(self, other: KeyStateRecord | None) -> bool:
        """Whether this report says something new: the key, the certificate, the degradation or a restart (a
        change of ``since`` or of the worker count alone is not news)."""
        if other is None:
            return True
        mine = (self.state, self.fingerprint, self.degraded, self.restarts)
        return mine != (other.state, other.fingerprint, other.degraded, other.restarts)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "certificateArn": self.certificate_arn,
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "workers": self.workers,
            "workersExpected": self.workers_expected,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "degraded": self.degraded,
            "reportedAt": self.reported_at,
            "listeners": list(self.listeners),
        }
