"""Load balancers: CreateLoadBalancer, GetLoadBalancer(s), DeleteLoadBalancer, Attach/DetachInstances,
UpdateLoadBalancerAttribute, GetLoadBalancerTlsPolicies, GetLoadBalancerMetricData, and the sweep that drops
old metric samples.

Each load balancer has its own principal, a role named after it (``arn:aws:iam::000000000000:role/NAME``),
with a profile of the same name in ``DATA_DIR/credentials``: its data plane signs as it. Deleting the load
balancer deletes its certificates (every grant it held is retired) and that principal.

A new load balancer is ``provisioning`` for ``lb_provisioning_delay`` seconds (its CreateLoadBalancer
operation ``Started``), then ``active``; it can be changed meanwhile (attach instances, create a certificate),
as its data plane can start at once. At most ``max_load_balancers`` exist at a time (Lightsail: 10 per Region,
the CreateLoadBalancer API reference). Attached instances are listed at once; their attach and detach
operations stay ``Started`` for ``lb_operation_delay`` seconds, as AWS's do.

Events (audience: the load balancer's principal): ``loadbalancer.created``, ``loadbalancer.instances_changed``,
``loadbalancer.attribute_changed``, ``loadbalancer.deleted`` (after ``loadbalancer.certificate_detached``
when a certificate was attached).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from lbproxy.contract.vocabulary import LB_CREATED, LB_DELETED
from lbproxy.core.principals import ADMIN_NAME, role_arn
from lbproxy.lightsail import attributes as attrs_mod
from lbproxy.lightsail import metrics as metrics_mod
from lbproxy.lightsail import pages, wire
from lbproxy.lightsail.attributes import HTTPS_REDIRECTION, Attributes
from lbproxy.lightsail.errors import InvalidInputException, not_found
from lbproxy.lightsail.rows import CERT_TYPE, INSTANCE_TYPE, LB_TYPE, LoadBalancer
from lbproxy.lightsail.store import LightsailStore


class LoadBalancerOperations(LightsailStore):
    def tick(self) -> None:
        """Drop metric samples older than the retention period."""
        cutoff = self._clock.time() - metrics_mod.RETENTION_SECONDS
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ls_metric_samples WHERE time < ?", (cutoff,))

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
        tag_list = attrs_mod.check_tags(tags)
        address_type = attrs_mod.check_ip_address_type(ip_address_type or attrs_mod.DEFAULT_IP_ADDRESS_TYPE)
        with self._lock, self._db.transaction() as tx:
            if self._load_lb(name) is not None:
                raise InvalidInputException(f"A load balancer with the name {name} already exists.")
            limit = self.limits.max_load_balancers
            if len(self._lb_names()) >= limit:
                raise InvalidInputException(
                    f"You have reached the maximum number of load balancers ({limit}) in this Region. Delete one "
                    "first (lbproxy control --max-load-balancers raises the limit)."
                )
            existing = self._principals.get(name)
            taken = existing is not None and (existing.kind != "role" or existing.arn != role_arn(name))
            if name == ADMIN_NAME or taken:
                raise InvalidInputException(
                    f"The name {name} is already used by a principal of this control plane; choose another."
                )
            principal = self._principals.ensure_role(name)
            lb_id = str(uuid.uuid4())
            now = self._clock.time()
            delay = self.limits.lb_provisioning_delay
            tx.execute(
                "INSERT INTO ls_load_balancers (name, id, principal_arn, instance_port, created_at, attributes,"
                " tags, ip_address_type, dns_name, ready_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    name,
                    lb_id,
                    principal.arn,
                    instance_port,
                    now,
                    json.dumps(attributes.to_json()),
                    json.dumps(tag_list),
                    address_type,
                    f"{name.lower().replace('_', '-')}-{lb_id[:8]}.{self.region}.elb.localhost",
                    now + delay,
                ),
            )
            lb = self._require_lb(name)
            self._events.publish(LB_CREATED, self._lb_ref(lb), [lb.principal_arn])
            ops = [self._operation(name, LB_TYPE, "CreateLoadBalancer", lb_name=name, delay=delay)]
            if certificate_name is not None and certificate_domain_name is not None:
                alternative_names = certificate_alternative_names
                self._new_certificate(name, certificate_name, certificate_domain_name, alternative_names, None)
                ops += self._certificate_created_ops(name, certificate_name)
        return ops

    def _certificate_created_ops(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        """CreateLoadBalancerTlsCertificate's two operations, ``Succeeded`` at once (as AWS's examples show)."""
        return [
            self._operation(cert_name, CERT_TYPE, "CreateLoadBalancerTlsCertificate", lb_name, lb_name=lb_name),
            self._operation(lb_name, LB_TYPE, "CreateLoadBalancerTlsCertificate", cert_name, lb_name=lb_name),
        ]

    def delete_load_balancer(self, name: str) -> list[dict[str, Any]]:
        """Delete it with all its certificates: every grant it held is retired, its principal removed (and what
        its data plane last reported goes with it)."""
        with self._lock:
            lb = self._require_lb(name)
            ops = []
            with self._db.transaction() as tx:
                self._fail_pending_operations(
                    name, "NotFoundException", f"The load balancer {name} was deleted before this operation completed."
                )
                if lb.attached_certificate is not None:
                    self._detach(lb, reason="loadbalancer_deleted")
                delay = self.limits.lb_operation_delay
                for cert in self._certs(name):
                    self._drop_certificate(cert)
                    for resource, rtype in ((cert.name, CERT_TYPE), (name, LB_TYPE)):
                        ops.append(self._operation(resource, rtype, "DeleteLoadBalancerTlsCertificate", delay=delay))
                tx.execute("DELETE FROM ls_metric_samples WHERE lb_name = ?", (name,))
                tx.execute("DELETE FROM ls_key_states WHERE lb_name = ?", (name,))
                tx.execute("DELETE FROM ls_load_balancers WHERE name = ?", (name,))
                self._events.publish(LB_DELETED, self._lb_ref(lb), [lb.principal_arn])
            principal = self._principals.get(name)
            if principal is not None and principal.kind == "role" and principal.arn == lb.principal_arn:
                self._principals.delete(name)
        return [self._operation(name, LB_TYPE, "DeleteLoadBalancer"), *ops]

    def get_load_balancer(self, name: str) -> dict[str, Any]:
        return self._lb_shape(self._require_lb(name))

    def get_load_balancers(self, page_token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of load balancers in name order, and the token of the next (None: that was the last)."""
        names, token = pages.page(self._lb_names(), page_token, pages.PAGE_SIZE, key=str)
        return [self._lb_shape(self._require_lb(name)) for name in names], token

    def _lb_shape(self, lb: LoadBalancer) -> dict[str, Any]:
        attached = self._attached(lb.name).values()
        https = self._https_enabled(lb)
        return wire.load_balancer(self.region, lb, attached, self._certs(lb.name), https, self._lb_state(lb))

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
                    "INSERT OR IGNORE INTO ls_lb_instances (lb_name, instance_name, attached_at, state, reason)"
                    " VALUES (?,?,?,?,?)",
                    (lb_name, n, self._clock.time(), "initial", "Lb.RegistrationInProgress"),
                )
                if cur.rowcount:
                    attached.append(n)
            if attached:
                self._publish_instances(lb, attached=attached)
            return self._instance_ops(lb_name, list(dict.fromkeys(instance_names)), "AttachInstancesToLoadBalancer")

    def _instance_ops(self, lb_name: str, names: list[str], op: str) -> list[dict[str, Any]]:
        """Per instance, the load balancer's operation and the instance's (AWS's order), ``Started``."""
        delay = self.limits.lb_operation_delay
        ops = []
        for n in names:
            ops.append(self._operation(lb_name, LB_TYPE, op, n, lb_name=lb_name, delay=delay))
            ops.append(self._operation(n, INSTANCE_TYPE, op, lb_name, lb_name=lb_name, delay=delay))
        return ops

    def detach_instances(self, lb_name: str, instance_names: Sequence[str]) -> list[dict[str, Any]]:
        if not instance_names:
            raise InvalidInputException("Specify at least one instance name.")
        with self._lock, self._db.transaction() as tx:
            lb = self._require_lb(lb_name)
            current = self._attached(lb_name)
            for n in instance_names:
                if n not in current:
                    raise InvalidInputException(f"The instance {n} is not attached to the load balancer {lb_name}.")
            names = list(dict.fromkeys(instance_names))
            tx.executemany(
                "DELETE FROM ls_lb_instances WHERE lb_name = ? AND instance_name = ?", [(lb_name, n) for n in names]
            )
            self._publish_instances(lb, detached=names)
            return self._instance_ops(lb_name, names, "DetachInstancesFromLoadBalancer")

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
            return [self._operation(lb_name, LB_TYPE, "UpdateLoadBalancerAttribute", name, lb_name=lb_name)]

    @staticmethod
    def tls_policies() -> list[dict[str, Any]]:
        return attrs_mod.tls_policies()

    def metric_data(
        self, lb_name: str, metric: str, period: int, start: float, end: float, unit: str, statistics: list[str]
    ) -> list[dict[str, Any]]:
        """GetLoadBalancerMetricData's datapoints, from the samples the data plane reported (``startTime`` rounded
        down as CloudWatch rounds it: see ``metrics.round_start``)."""
        self._require_lb(lb_name)
        start = metrics_mod.round_start(start, self._clock.time())
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
