"""Operations on a resource named by name (and optionally ARN): TagResource, UntagResource, SetIpAddressType.

Tags (``attributes.check_tags``: Lightsail's tag rules):

- A load balancer is tagged by its name, as Terraform does (``resourceName``; a ``resourceArn`` must name the
  same load balancer). Tags appear in GetLoadBalancer's ``tags``; a key-only tag has the value ``""``.
- A load-balancer TLS certificate is refused as AWS refuses it: ``InvalidInputException`` "The resource type,
  LoadBalancerTlsCertificate, is not taggable." (observed, quoted in Terraform's ``lb_certificate.go``), although
  the developer guide lists such certificates as taggable. Tags given to CreateLoadBalancerTlsCertificate are
  kept and shown.
- An instance (lbproxy's instances are registered addresses) is not emulated: ``NotEmulatedException``
  (``InternalFailure``, HTTP 501, as every operation lbproxy does not emulate); any other resource does not exist
  here (``NotFoundException``).

SetIpAddressType (``resourceType`` ``LoadBalancer``, ``Instance`` or ``Distribution``, as its API reference says):

- ``LoadBalancer``: ``dualstack``, ``ipv4`` or ``ipv6`` is stored, GetLoadBalancer's ``ipAddressType`` shows it,
  and ``loadbalancer.attribute_changed`` (``attributeName`` ``IpAddressType``) makes the data plane fetch its
  configuration again (``ipAddressType`` there: ``dualstack`` also listens on the IPv6 loopback).
- ``Instance`` and ``Distribution``: not emulated (lbproxy's instances are registered addresses whose type
  follows the address, and it has no distributions): ``NotEmulatedException`` (``InternalFailure``, HTTP 501),
  the answer lbproxy gives for every operation it does not emulate. Any other type is
  ``InvalidInputException``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lbproxy.awsapi.errors import NotEmulatedException
from lbproxy.contract.vocabulary import LB_ATTRIBUTE_CHANGED
from lbproxy.lightsail import attributes as attrs_mod
from lbproxy.lightsail.errors import InvalidInputException, NotFoundException
from lbproxy.lightsail.rows import CERT_TYPE, INSTANCE_TYPE, LB_TYPE, Instance, LoadBalancer
from lbproxy.lightsail.store import LightsailStore

#: ``arn:aws:lightsail:REGION:ACCOUNT:TYPE/ID`` (the model's ``ResourceArn`` pattern, for Lightsail).
_ARN_RE = re.compile(r"arn:aws[^:]*:lightsail:([a-z0-9-]+):([0-9]+):([a-zA-Z]+)/([a-zA-Z0-9-]+)")
#: SetIpAddressType's resource types (its API reference: "Distribution, Instance, and LoadBalancer").
IP_ADDRESS_RESOURCE_TYPES = ("Distribution", INSTANCE_TYPE, LB_TYPE)


def not_taggable(resource_type: str) -> InvalidInputException:
    return InvalidInputException(f"The resource type, {resource_type}, is not taggable.")


class ResourceOperations(LightsailStore):
    # -- tags ------------------------------------------------------------------------------------

    def tag_resource(
        self, resource_name: str, resource_arn: str | None, tags: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        new = attrs_mod.check_tags(tags)
        with self._lock, self._db.transaction():
            lb = self._taggable(resource_name, resource_arn)
            self._store_tags(lb, attrs_mod.tagged(lb.tags, new))
            return [self._operation(lb.name, LB_TYPE, "TagResource", lb_name=lb.name)]

    def untag_resource(self, resource_name: str, resource_arn: str | None, tag_keys: list[str]) -> list[dict[str, Any]]:
        with self._lock, self._db.transaction():
            lb = self._taggable(resource_name, resource_arn)
            self._store_tags(lb, attrs_mod.untagged(lb.tags, tag_keys))
            return [self._operation(lb.name, LB_TYPE, "UntagResource", lb_name=lb.name)]

    def _store_tags(self, lb: LoadBalancer, tags: list[dict[str, str]]) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE ls_load_balancers SET tags = ? WHERE name = ?", (json.dumps(tags), lb.name))

    def _taggable(self, name: str, arn: str | None) -> LoadBalancer:
        """The load balancer a tag request means, or the error AWS answers for what it names instead."""
        if arn is not None:
            m = _ARN_RE.fullmatch(arn)
            if m is None:
                raise InvalidInputException(f"The resource ARN is not valid: {arn}")
            rtype, rid = m.group(3), m.group(4)
            if rtype == CERT_TYPE:
                raise not_taggable(CERT_TYPE)
            if rtype == INSTANCE_TYPE:
                raise self._instance_tags_not_emulated(name)
            lb = self._load_lb(name)
            if rtype != LB_TYPE or m.group(1) != self.region or lb is None or lb.id != rid:
                raise NotFoundException(f"The resource does not exist: {arn}")
            return lb
        lb = self._load_lb(name)
        if lb is not None:
            return lb
        if self._db.query_one("SELECT 1 FROM ls_lb_certificates WHERE name = ?", (name,)) is not None:
            raise not_taggable(CERT_TYPE)
        if self._instance_record(name) is not None:
            raise self._instance_tags_not_emulated(name)
        raise NotFoundException(f"The resource does not exist: {name}")

    @staticmethod
    def _instance_tags_not_emulated(name: str) -> NotEmulatedException:
        return NotEmulatedException(
            f"lbproxy does not emulate Lightsail_20161128.TagResource on instances (its instances are registered "
            f"addresses): {name}. It tags load balancers."
        )

    def _instance_record(self, name: str) -> Instance | None:
        row = self._db.query_one("SELECT * FROM ls_instances WHERE name = ?", (name,))
        return Instance.from_row(row) if row is not None else None

    # -- SetIpAddressType ------------------------------------------------------------------------

    def set_ip_address_type(self, resource_type: str, resource_name: str, ip_address_type: str) -> list[dict[str, Any]]:
        address_type = attrs_mod.check_ip_address_type(ip_address_type)
        if resource_type == LB_TYPE:
            return self._set_lb_ip_address_type(resource_name, address_type)
        if resource_type in IP_ADDRESS_RESOURCE_TYPES:
            raise NotEmulatedException(
                f"lbproxy does not emulate Lightsail_20161128.SetIpAddressType for {resource_type} resources: "
                f"{resource_name}. It emulates it for load balancers (resourceType LoadBalancer)."
            )
        raise InvalidInputException(
            f"The resource type is not valid for SetIpAddressType: {resource_type}. Valid types: "
            f"{', '.join(IP_ADDRESS_RESOURCE_TYPES)}"
        )

    def _set_lb_ip_address_type(self, name: str, address_type: str) -> list[dict[str, Any]]:
        with self._lock, self._db.transaction() as tx:
            lb = self._require_lb(name)
            if address_type != lb.ip_address_type:
                tx.execute("UPDATE ls_load_balancers SET ip_address_type = ? WHERE name = ?", (address_type, name))
                self._events.publish(
                    LB_ATTRIBUTE_CHANGED,
                    {
                        **self._lb_ref(lb),
                        "attributeName": "IpAddressType",
                        "value": address_type,
                        "ipAddressType": address_type,
                        "attributes": lb.attributes.typed(),
                    },
                    [lb.principal_arn],
                )
            delay = self.limits.lb_operation_delay
            return [self._operation(name, LB_TYPE, "SetIpAddressType", address_type, lb_name=name, delay=delay)]
