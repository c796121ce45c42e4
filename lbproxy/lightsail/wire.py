"""Lightsail's wire shapes, pure: records in, the lower-camel JSON the Lightsail API answers with out.

- ``instance``         ``Instance`` (GetInstance, GetInstances).
- ``load_balancer``    ``LoadBalancer`` (GetLoadBalancer, GetLoadBalancers).
- ``tls_certificate``  ``LoadBalancerTlsCertificate`` (GetLoadBalancerTlsCertificates), from ACM's detail.
- ``operation``        ``Operation``: what every change answers and ``GetOperation`` reads back, from its
                       record and the time now (``Started`` until it is due, then ``Succeeded``; or ``Failed``
                       with ``errorCode`` / ``errorDetails``).
- ``lb_ref`` / ``cert_ref``  the names every event about a load balancer or its certificate carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from lbproxy.lightsail.attributes import HTTP_PORT, HTTPS_PORT, lightsail_arn, support_code
from lbproxy.lightsail.rows import (
    CERT_TYPE,
    FAILED,
    INSTANCE_TYPE,
    LB_TYPE,
    Attachment,
    Instance,
    LbCertificate,
    LoadBalancer,
    OperationRecord,
)

#: ACM ``FailureReason`` values Lightsail passes on as they are (anything else is ``OTHER``).
FAILURE_REASONS = (
    "NO_AVAILABLE_CONTACTS",
    "ADDITIONAL_VERIFICATION_REQUIRED",
    "DOMAIN_NOT_ALLOWED",
    "INVALID_PUBLIC_DOMAIN",
)
#: ACM's times -> Lightsail's (the first one present wins: ``issuedAt`` is IssuedAt, else ImportedAt).
_TIMES = (("IssuedAt", "issuedAt"), ("ImportedAt", "issuedAt"), ("NotAfter", "notAfter"), ("NotBefore", "notBefore"))
#: ACM's descriptive fields -> Lightsail's (when ACM has them).
_FIELDS = (
    ("Issuer", "issuer"),
    ("KeyAlgorithm", "keyAlgorithm"),
    ("Serial", "serial"),
    ("SignatureAlgorithm", "signatureAlgorithm"),
    ("Subject", "subject"),
)


def lb_arn(region: str, lb: LoadBalancer) -> str:
    return lightsail_arn(region, LB_TYPE, lb.id)


def cert_arn(region: str, cert: LbCertificate) -> str:
    return lightsail_arn(region, CERT_TYPE, cert.id)


def lb_ref(region: str, lb: LoadBalancer) -> dict[str, Any]:
    return {"loadBalancerName": lb.name, "loadBalancerArn": lb_arn(region, lb), "principalArn": lb.principal_arn}


def cert_ref(region: str, cert: LbCertificate) -> dict[str, Any]:
    return {"certificateName": cert.name, "certificateArn": cert_arn(region, cert), "acmCertificateArn": cert.acm_arn}


def _location(region: str, zone: str = "all") -> dict[str, str]:
    return {"availabilityZone": zone, "regionName": region}


def instance_ip_address_type(inst: Instance) -> str:
    """An instance's ``ipAddressType`` follows its registered address: ``ipv6`` for an IPv6 one, else ``ipv4``."""
    try:
        ip = ipaddress.ip_address(inst.host)
    except ValueError:
        return "ipv4"
    return "ipv6" if ip.version == 6 else "ipv4"


def instance(region: str, inst: Instance) -> dict[str, Any]:
    v6 = instance_ip_address_type(inst) == "ipv6"
    ports = [inst.port] if inst.port else [HTTP_PORT]
    shape: dict[str, Any] = {
        "name": inst.name,
        "arn": lightsail_arn(region, INSTANCE_TYPE, inst.id),
        "supportCode": support_code(inst.id),
        "createdAt": inst.created_at,
        "location": _location(region, f"{region}a"),
        "resourceType": INSTANCE_TYPE,
        "tags": [],
        "blueprintId": "lbproxy_backend",
        "blueprintName": "lbproxy registered instance",
        "bundleId": "lbproxy_local",
        "isStaticIp": False,
        "ipAddressType": instance_ip_address_type(inst),
        "hardware": {"cpuCount": 1, "disks": [], "ramSizeInGb": 0.5},
        "networking": {
            "monthlyTransfer": {"gbPerMonthAllocated": 0},
            "ports": [
                {
                    "fromPort": p,
                    "toPort": p,
                    "protocol": "tcp",
                    "accessFrom": "Anywhere (0.0.0.0/0 and ::/0)",
                    "accessType": "Public",
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
    if v6:
        shape["ipv6Addresses"] = [inst.host]
    else:
        shape["privateIpAddress"] = inst.host
        shape["publicIpAddress"] = inst.host
    return shape


def load_balancer(
    region: str,
    lb: LoadBalancer,
    attached: Iterable[Attachment],
    certificates: Iterable[LbCertificate],
    https: bool,
    state: str,
) -> dict[str, Any]:
    """``https``: an ISSUED certificate is attached (the HTTPS listener is on); ``state``: ``provisioning`` or
    ``active``. Every field Terraform's ``aws_lightsail_lb*`` resources read is always there (``createdAt``,
    ``healthCheckPath``, ``ipAddressType``, ``httpsRedirectionEnabled``, ``configurationOptions``)."""
    health = []
    for a in attached:
        entry = {"instanceName": a.instance_name, "instanceHealth": a.state}
        if a.reason:
            entry["instanceHealthReason"] = a.reason
        health.append(entry)
    return {
        "name": lb.name,
        "arn": lb_arn(region, lb),
        "supportCode": support_code(lb.id),
        "createdAt": lb.created_at,
        "location": _location(region),
        "resourceType": LB_TYPE,
        "tags": lb.tags,
        "dnsName": lb.dns_name,
        "state": state,
        "protocol": "HTTP_HTTPS" if https else "HTTP",
        "publicPorts": [HTTP_PORT, HTTPS_PORT] if https else [HTTP_PORT],
        "healthCheckPath": lb.attributes.health_check_path,
        "instancePort": lb.instance_port,
        "instanceHealthSummary": health,
        "tlsCertificateSummaries": [
            {"name": c.name, "isAttached": c.name == lb.attached_certificate} for c in certificates
        ],
        "configurationOptions": lb.attributes.configuration_options(),
        "ipAddressType": lb.ip_address_type,
        "httpsRedirectionEnabled": lb.attributes.https_redirection_enabled,
        "tlsPolicyName": lb.attributes.tls_policy_name,
    }


def tls_certificate(
    region: str, cert: LbCertificate, attached: bool, detail: Mapping[str, Any], status: str
) -> dict[str, Any]:
    """``detail``: ACM's ``Certificate`` (DescribeCertificate) for ``cert.acm_arn``; ``status``: Lightsail's."""
    shape: dict[str, Any] = {
        "name": cert.name,
        "arn": cert_arn(region, cert),
        "supportCode": support_code(cert.id),
        "createdAt": cert.created_at,
        "location": _location(region),
        "resourceType": CERT_TYPE,
        "tags": cert.tags,
        "loadBalancerName": cert.lb_name,
        "isAttached": attached,
        "status": status,
        "domainName": detail.get("DomainName"),
        "subjectAlternativeNames": list(detail.get("SubjectAlternativeNames", [])),
    }
    records = []
    for opt in detail.get("DomainValidationOptions", []) or []:
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
    if detail.get("FailureReason"):
        reason = detail["FailureReason"]
        shape["failureReason"] = reason if reason in FAILURE_REASONS else "OTHER"
    for src, dst in _TIMES:
        if detail.get(src) is not None and dst not in shape:
            shape[dst] = detail[src]
    for src, dst in _FIELDS:
        if detail.get(src):
            shape[dst] = detail[src]
    renewal = detail.get("RenewalSummary")
    if renewal:
        shape["renewalSummary"] = {
            "renewalStatus": renewal.get("RenewalStatus"),
            "domainValidationOptions": [
                {"domainName": o.get("DomainName"), "validationStatus": o.get("ValidationStatus")}
                for o in renewal.get("DomainValidationOptions", [])
            ],
        }
    return shape


def operation(region: str, rec: OperationRecord, now: float) -> dict[str, Any]:
    """``Operation`` as it stands at ``now`` (see ``OperationRecord.status_at``)."""
    status, changed_at = rec.status_at(now)
    out: dict[str, Any] = {
        "id": rec.id,
        "resourceName": rec.resource_name,
        "resourceType": rec.resource_type,
        "createdAt": rec.created_at,
        "location": _location(region, rec.zone),
        "isTerminal": status != "Started",
        "operationType": rec.operation_type,
        "status": status,
        "statusChangedAt": changed_at,
    }
    if rec.details:
        out["operationDetails"] = rec.details
    if status == FAILED:
        out["errorCode"] = rec.error_code or "OperationFailure"
        out["errorDetails"] = rec.error_details or ""
    return out
