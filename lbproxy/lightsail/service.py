"""``LightsailService``: load balancers, instances and load-balancer TLS certificates, in SQLite.

State lives in the control plane's database (``store``); methods answer in Lightsail's wire shapes
(``wire``), which ``api`` returns as they are. The operations live with their kind: ``instanceops``
(instances, the instances file), ``loadbalancers`` (load balancers, attributes, metrics), ``tlscertificates``
(certificates and their grants), ``resources`` (tags, SetIpAddressType), ``operationlog`` (GetOperation(s)),
``dataplane`` (what a data plane reads and reports). ``LightsailService`` is all of them, plus ``overview``:
what the control plane's dashboard shows, read directly (no API call, no audit record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any

from lbproxy.core.clock import Clock
from lbproxy.core.events import EventLog
from lbproxy.core.principals import Principals
from lbproxy.core.store import Database
from lbproxy.lightsail.certificates import CertificateBroker
from lbproxy.lightsail.dataplane import DataPlaneOperations
from lbproxy.lightsail.errors import NotFoundException
from lbproxy.lightsail.instanceops import InstanceOperations
from lbproxy.lightsail.instances import load_instances_file
from lbproxy.lightsail.loadbalancers import LoadBalancerOperations
from lbproxy.lightsail.operationlog import OperationLog
from lbproxy.lightsail.resources import ResourceOperations
from lbproxy.lightsail.rows import ORIGIN_LIGHTSAIL, KeyStateRecord, LbCertificate
from lbproxy.lightsail.rows import LoadBalancer as LoadBalancerRow
from lbproxy.lightsail.store import KEY_STATE_COLUMNS_ADDED, LB_COLUMNS_ADDED, SCHEMA, LightsailLimits
from lbproxy.lightsail.tlscertificates import TlsCertificateOperations


@dataclasses.dataclass(frozen=True, slots=True)
class TlsCertificateView:
    record: LbCertificate
    #: ``LoadBalancerTlsCertificate`` as GetLoadBalancerTlsCertificates answers it.
    shape: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class LoadBalancerView:
    """One load balancer as the dashboard shows it, with what relates it to ACM and KMS."""

    name: str
    arn: str
    principal_arn: str
    #: ``LoadBalancer`` as GetLoadBalancer answers it.
    shape: dict[str, Any]
    tls_certificates: tuple[TlsCertificateView, ...]
    #: The ACM certificate behind the attached certificate, and the KMS grant its data plane decrypts with.
    attached_acm_arn: str | None
    grant_id: str | None
    #: What its data plane last reported (None: nothing yet).
    key_state: KeyStateRecord | None
    #: Each attached instance's address (``HOST:PORT``, the load balancer's ``instancePort`` when it has none).
    instance_addresses: dict[str, str] = dataclasses.field(default_factory=dict)


class LightsailService(
    InstanceOperations,
    LoadBalancerOperations,
    TlsCertificateOperations,
    ResourceOperations,
    OperationLog,
    DataPlaneOperations,
):
    def __init__(
        self,
        db: Database,
        principals: Principals,
        events: EventLog,
        clock: Clock,
        certificates: CertificateBroker,
        settings: Any,
    ) -> None:
        """``settings``: the control plane's (``region``, ``instances_file`` and the ``LightsailLimits``)."""
        self._db = db
        self._principals = principals
        self._events = events
        self._clock = clock
        self.certificates = certificates
        self.region = settings.region
        self.limits: LightsailLimits = settings
        self._instances_file = settings.instances_file
        self._lock = threading.RLock()
        db.ensure_schema(SCHEMA)
        db.ensure_columns("ls_load_balancers", LB_COLUMNS_ADDED)
        db.ensure_columns("ls_key_states", KEY_STATE_COLUMNS_ADDED)
        if self._instances_file is not None:
            self.apply_instances_file(load_instances_file(self._instances_file))
        self._own_requested_certificates()

    def _instance_addresses(self, lb: LoadBalancerRow) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self._attached(lb.name):
            row = self._db.query_one("SELECT host, port FROM ls_instances WHERE name = ?", (name,))
            if row is not None:
                host = f"[{row['host']}]" if ":" in row["host"] else row["host"]
                out[name] = f"{host}:{row['port'] or lb.instance_port}"
        return out

    def load_balancer_arn(self, name: str) -> str | None:
        """The ARN of the load balancer called ``name``, or None when there is none."""
        lb = self._load_lb(name)
        return self._lb_arn(lb) if lb is not None else None

    def _own_requested_certificates(self) -> None:
        """The ACM certificates Lightsail requested are Lightsail's, also those requested before ACM had owners."""
        rows = self._db.query("SELECT acm_arn FROM ls_lb_certificates WHERE origin = ?", (ORIGIN_LIGHTSAIL,))
        for row in rows:
            with contextlib.suppress(NotFoundException):  # gone from ACM already: nothing to protect
                self.certificates.assign_owner(row["acm_arn"])

    def overview(self) -> list[LoadBalancerView]:
        """Every load balancer with its certificates, the ACM certificate and grant its data plane uses, and
        that data plane's last key-state report, in name order."""
        out = []
        with self._lock:
            for name in self._lb_names():
                lb = self._require_lb(name)
                attached = self._cert_or_none(name, lb.attached_certificate) if lb.attached_certificate else None
                out.append(
                    LoadBalancerView(
                        name=lb.name,
                        arn=self._lb_arn(lb),
                        principal_arn=lb.principal_arn,
                        shape=self._lb_shape(lb),
                        tls_certificates=tuple(TlsCertificateView(c, self._cert_shape(c)) for c in self._certs(name)),
                        attached_acm_arn=attached.acm_arn if attached is not None else None,
                        grant_id=lb.grant_id if attached is not None else None,
                        key_state=self.key_state_record(name),
                        instance_addresses=self._instance_addresses(lb),
                    )
                )
        return out
