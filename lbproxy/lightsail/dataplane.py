"""The data planes' side of Lightsail, without HTTP (the routes are ``lbproxy.control.dataplane``; the
documents ``lbproxy.contract.dataplane``):

- who may read a load balancer's data-plane configuration: its own principal, or the admin
  (``authorize_data_plane``; anyone else is refused whether or not the load balancer exists);
- the configuration document (``data_plane_config``): state, listeners, attributes, the IP address type,
  instances with their addresses, and the attached certificate with its sealed bundle and grant when HTTPS is on;
- reports (``report``): instance health (``loadbalancer.health_changed`` when it changes), metric samples
  (what GetLoadBalancerMetricData aggregates), and the key state: what the data plane holds and its worker
  processes (``loadbalancer.key_state_changed``, admin only, when it says something new).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lbproxy.contract.dataplane import (
    CertificateEntry,
    DataPlaneConfig,
    DataPlaneReport,
    DocumentError,
    GrantEntry,
    InstanceEntry,
)
from lbproxy.contract.vocabulary import LB_HEALTH_CHANGED, LB_KEY_STATE_CHANGED
from lbproxy.core.principals import Principal
from lbproxy.lightsail import metrics as metrics_mod
from lbproxy.lightsail import wire
from lbproxy.lightsail.attributes import HTTP_PORT, HTTPS_PORT
from lbproxy.lightsail.errors import AccessDeniedException, InvalidInputException, not_found
from lbproxy.lightsail.rows import KeyStateRecord, LoadBalancer
from lbproxy.lightsail.store import LightsailStore


class DataPlaneOperations(LightsailStore):
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
                state=self._lb_state(lb),
                instance_port=lb.instance_port,
                http_port=HTTP_PORT,
                https_port=HTTPS_PORT,
                https_enabled=https,
                attributes=lb.attributes.typed(),
                instances=instances,
                certificate=self._data_plane_certificate(lb) if https else None,
                last_event_id=last_event_id,
                ip_address_type=lb.ip_address_type,
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
            arn=wire.cert_arn(self.region, cert),
            acm_certificate_arn=cert.acm_arn,
            certificate_pem=bundle.get("Certificate") or "",
            chain_pem=bundle.get("CertificateChain") or "",
            encryption_context=self.certificates.context(cert.acm_arn, lb_arn),
            bundle=bundle,
            grant=grant,
            kms_key_arn=bundle.get("KeyId") or (ref.key_arn if ref else None),
        )

    def report(self, principal: Principal, lb_name: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /dataplane/v1/load-balancers/{name}/report``: health states, metric deltas, key state."""
        try:
            report = DataPlaneReport.from_json(doc)
        except DocumentError as exc:
            raise InvalidInputException(str(exc)) from None
        now = self._clock.time()
        health = {i.name: (i.state, i.reason_code) for i in report.instances}
        samples = metrics_mod.samples_from_report(report.metrics, now)
        with self._lock, self._db.transaction() as tx:
            lb = self.authorize_data_plane(principal, lb_name)
            attached = self._attached(lb.name)
            changed, ignored = [], []
            for name, (state, reason) in health.items():
                if name not in attached:
                    ignored.append(name)
                    continue
                if (attached[name].state, attached[name].reason) != (state, reason):
                    tx.execute(
                        "UPDATE ls_lb_instances SET state = ?, reason = ? WHERE lb_name = ? AND instance_name = ?",
                        (state, reason, lb.name, name),
                    )
                    changed.append({"name": name, "state": state, "reasonCode": reason})
            tx.executemany(
                "INSERT INTO ls_metric_samples (lb_name, metric, time, sum, count, minimum, maximum)"
                " VALUES (?,?,?,?,?,?,?)",
                [(lb.name, s.metric, s.time, s.sum, s.count, s.minimum, s.maximum) for s in samples],
            )
            tx.execute("UPDATE ls_load_balancers SET last_report_at = ? WHERE name = ?", (now, lb.name))
            if changed:
                self._events.publish(LB_HEALTH_CHANGED, {**self._lb_ref(lb), "instances": changed}, [lb.principal_arn])
            if report.key_state is not None:
                record = KeyStateRecord.from_report(lb.name, report.key_state, now)
                if record.differs_from(self.key_state_record(lb.name)):
                    # Admin-only audience: the dashboard follows it; the data plane needs no echo of itself.
                    detail = {**self._lb_ref(lb), "keyState": report.key_state.to_json()}
                    self._events.publish(LB_KEY_STATE_CHANGED, detail, [])
                self._store_key_state(record)
        return {
            "accepted": {"instances": len(health) - len(ignored), "samples": len(samples)},
            "ignoredInstances": ignored,
            "lastEventId": self._events.last_id(),
        }

    def _store_key_state(self, ks: KeyStateRecord) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO ls_key_states (lb_name, state, since, certificate_arn, serial, fingerprint,"
                " workers, reported_at, workers_expected, restarts, last_exit, degraded, listeners)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (ks.lb_name, ks.state, ks.since, ks.certificate_arn, ks.serial, ks.fingerprint, ks.workers,
                 ks.reported_at, ks.workers_expected, ks.restarts, ks.last_exit, ks.degraded,
                 json.dumps(list(ks.listeners))),
            )  # fmt: skip

    def key_state_record(self, lb_name: str) -> KeyStateRecord | None:
        """What the load balancer's data plane last reported about its key (None: nothing yet)."""
        row = self._db.query_one("SELECT * FROM ls_key_states WHERE lb_name = ?", (lb_name,))
        return KeyStateRecord.from_row(row) if row is not None else None

    def key_states(self) -> dict[str, dict[str, Any]]:
        """Each data plane's last reported key state, by load-balancer name, as JSON (``KeyStateRecord.to_json``)."""
        rows = self._db.query("SELECT * FROM ls_key_states ORDER BY lb_name")
        return {r["lb_name"]: KeyStateRecord.from_row(r).to_json() for r in rows}
