"""Lightsail driven with boto3 over a real socket, as a user would: instances, load balancer, certificates,
grants (seen with ``kms.list_grants``), attributes, swap, detach, delete, and Lightsail's error codes."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest
from awserrors import code
from botocore.exceptions import ClientError
from lightsail_helpers import LightsailControl

ACM_CONTEXT = "aws:acm:arn"
LS_CONTEXT = "aws:lightsail:arn"


def acm_arn_of(ls: LightsailControl, lb: str, cert: str) -> str:
    return ls.call(lambda: ls.plane.lightsail._require_cert(lb, cert).acm_arn)  # type: ignore[union-attr]


def grants(kms: Any) -> list[dict[str, Any]]:
    return [g for g in kms.list_grants(KeyId="alias/aws/acm")["Grants"] if g.get("Name") == "IssuedThroughACM"]


def test_the_whole_setup(ls: LightsailControl, tmp_path: Path) -> None:
    lightsail, kms, acm = ls.client("lightsail"), ls.client("kms"), ls.client("acm")

    # Instances from the --instances file, running.
    insts = {i["name"]: i for i in lightsail.get_instances()["instances"]}
    assert set(insts) == {"web-1", "web-2", "web-3"}
    assert insts["web-1"]["state"] == {"code": 16, "name": "running"}
    assert insts["web-1"]["arn"].startswith("arn:aws:lightsail:us-east-1:000000000000:Instance/")
    assert lightsail.get_instance(instanceName="web-3")["instance"]["privateIpAddress"] == "10.0.0.3"

    # The load balancer, with its own principal and credentials profile.
    ops = lightsail.create_load_balancer(
        loadBalancerName="demo-lb", instancePort=8080, healthCheckPath="/health", tags=[{"key": "env", "value": "test"}]
    )["operations"]
    # Provisioning first, as AWS: the operation is Started until lb_provisioning_delay (2 s) has passed.
    assert ops[0]["operationType"] == "CreateLoadBalancer" and ops[0]["status"] == "Started"
    assert ops[0]["isTerminal"] is False and ops[0]["location"]["regionName"] == "us-east-1"
    assert lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]["state"] == "provisioning"
    ls.clock.advance(seconds=2)  # type: ignore[attr-defined]
    op = lightsail.get_operation(operationId=ops[0]["id"])["operation"]
    assert (op["status"], op["isTerminal"]) == ("Succeeded", True)
    assert op["statusChangedAt"].timestamp() == pytest.approx(ops[0]["createdAt"].timestamp() + 2)
    creds = configparser.ConfigParser()
    creds.read(tmp_path / "data" / "credentials")
    assert "demo-lb" in creds and creds["demo-lb"]["aws_access_key_id"] == ls.principal("demo-lb").access_key_id
    lb = lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]
    assert lb["arn"].startswith("arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/")
    assert (lb["protocol"], lb["publicPorts"], lb["state"]) == ("HTTP", [80], "active")
    assert (
        lb["healthCheckPath"] == "/health"
        and lb["instancePort"] == 8080
        and lb["tags"] == [{"key": "env", "value": "test"}]
    )
    assert lb["configurationOptions"]["HealthCheckPath"] == "/health" and lb["tlsPolicyName"] == "TLS-2016-08"
    assert [x["name"] for x in lightsail.get_load_balancers()["loadBalancers"]] == ["demo-lb"]

    lightsail.attach_instances_to_load_balancer(loadBalancerName="demo-lb", instanceNames=["web-1", "web-2", "web-3"])
    lightsail.detach_instances_from_load_balancer(loadBalancerName="demo-lb", instanceNames=["web-3"])
    health = lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]["instanceHealthSummary"]
    assert health == [
        {"instanceName": "web-1", "instanceHealth": "initial", "instanceHealthReason": "Lb.RegistrationInProgress"},
        {"instanceName": "web-2", "instanceHealth": "initial", "instanceHealthReason": "Lb.RegistrationInProgress"},
    ]

    # A certificate: ACM is asked for it; its status mirrors ACM's.
    lightsail.create_load_balancer_tls_certificate(
        loadBalancerName="demo-lb",
        certificateName="cert-a",
        certificateDomainName="www.example.com",
        certificateAlternativeNames=["example.com"],
    )
    (cert,) = lightsail.get_load_balancer_tls_certificates(loadBalancerName="demo-lb")["tlsCertificates"]
    assert cert["status"] == "PENDING_VALIDATION" and cert["isAttached"] is False
    assert cert["arn"].startswith("arn:aws:lightsail:us-east-1:000000000000:LoadBalancerTlsCertificate/")
    acm_a = acm_arn_of(ls, "demo-lb", "cert-a")
    assert acm.describe_certificate(CertificateArn=acm_a)["Certificate"]["Status"] == "PENDING_VALIDATION"
    with pytest.raises(ClientError) as e:
        lightsail.attach_load_balancer_tls_certificate(loadBalancerName="demo-lb", certificateName="cert-a")
    assert code(e) == "InvalidInputException"
    with pytest.raises(ClientError) as e:
        lightsail.update_load_balancer_attribute(
            loadBalancerName="demo-lb", attributeName="HttpsRedirectionEnabled", attributeValue="true"
        )
    assert code(e) == "InvalidInputException"

    ls.issue_pending()
    (cert,) = lightsail.get_load_balancer_tls_certificates(loadBalancerName="demo-lb")["tlsCertificates"]
    assert cert["status"] == "ISSUED" and cert["domainName"] == "www.example.com"
    assert cert["subjectAlternativeNames"] == ["www.example.com", "example.com"]
    assert {r["domainName"] for r in cert["domainValidationRecords"]} == {"www.example.com", "example.com"}
    assert cert["serial"] and cert["notAfter"] and cert["issuer"]

    # Attach: the grant, exactly.
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="demo-lb", certificateName="cert-a")
    lb = lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]
    assert (lb["protocol"], lb["publicPorts"]) == ("HTTP_HTTPS", [80, 443])
    assert lb["tlsCertificateSummaries"] == [{"name": "cert-a", "isAttached": True}]
    (g,) = grants(kms)
    role = ls.principal("demo-lb")
    assert g["GranteePrincipal"] == role.arn == "arn:aws:iam::000000000000:role/demo-lb"
    assert g["RetiringPrincipal"] == "acm.amazonaws.com"
    assert sorted(g["Operations"]) == ["Decrypt", "DescribeKey"]
    assert g["Constraints"] == {"EncryptionContextEquals": {ACM_CONTEXT: acm_a, LS_CONTEXT: lb["arn"]}}
    assert g["KeyId"] == kms.describe_key(KeyId="alias/aws/acm")["KeyMetadata"]["Arn"]
    assert acm.describe_certificate(CertificateArn=acm_a)["Certificate"]["InUseBy"] == [lb["arn"]]

    # Every attribute.
    for name, value, expect in [
        ("HealthCheckPath", "/ping", "/ping"),
        ("SessionStickinessEnabled", "true", "true"),
        ("SessionStickiness_LB_CookieDurationSeconds", "600", "600"),
        ("HttpsRedirectionEnabled", "true", "true"),
        ("TlsPolicyName", "TLS-FS-1-2-Res-2019-08", "TLS-FS-1-2-Res-2019-08"),
    ]:
        ops = lightsail.update_load_balancer_attribute(
            loadBalancerName="demo-lb", attributeName=name, attributeValue=value
        )["operations"]
        assert ops[0]["operationType"] == "UpdateLoadBalancerAttribute"
        lb = lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]
        assert lb["configurationOptions"][name] == expect
    assert lb["healthCheckPath"] == "/ping" and lb["httpsRedirectionEnabled"] is True
    assert lb["tlsPolicyName"] == "TLS-FS-1-2-Res-2019-08"
    policies = lightsail.get_load_balancer_tls_policies()["tlsPolicies"]
    assert [p["name"] for p in policies] == ["TLS-2016-08", "TLS-FS-1-2-Res-2019-08"]
    assert [p["name"] for p in policies if p["isDefault"]] == ["TLS-2016-08"]
    assert next(p for p in policies if p["name"] == "TLS-FS-1-2-Res-2019-08")["protocols"] == ["TLSv1.2"]

    # Swap: the second certificate's grant replaces the first's.
    lightsail.create_load_balancer_tls_certificate(
        loadBalancerName="demo-lb", certificateName="cert-b", certificateDomainName="www.example.com"
    )
    with pytest.raises(ClientError) as e:  # two per load balancer
        lightsail.create_load_balancer_tls_certificate(
            loadBalancerName="demo-lb", certificateName="cert-c", certificateDomainName="c.example.com"
        )
    assert code(e) == "InvalidInputException"
    ls.issue_pending()
    acm_b = acm_arn_of(ls, "demo-lb", "cert-b")
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="demo-lb", certificateName="cert-b")
    (g2,) = grants(kms)
    assert g2["GrantId"] != g["GrantId"]
    assert g2["Constraints"]["EncryptionContextEquals"] == {ACM_CONTEXT: acm_b, LS_CONTEXT: lb["arn"]}
    assert acm.describe_certificate(CertificateArn=acm_a)["Certificate"]["InUseBy"] == []
    summaries = lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]["tlsCertificateSummaries"]
    assert summaries == [{"name": "cert-a", "isAttached": False}, {"name": "cert-b", "isAttached": True}]

    # Deleting the attached certificate needs force; with it the grant is retired (detach).
    with pytest.raises(ClientError) as e:
        lightsail.delete_load_balancer_tls_certificate(loadBalancerName="demo-lb", certificateName="cert-b")
    assert code(e) == "InvalidInputException"
    lightsail.delete_load_balancer_tls_certificate(loadBalancerName="demo-lb", certificateName="cert-b", force=True)
    assert grants(kms) == []
    lb = lightsail.get_load_balancer(loadBalancerName="demo-lb")["loadBalancer"]
    assert (lb["protocol"], lb["httpsRedirectionEnabled"]) == ("HTTP", False)
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn=acm_b)
    assert code(e) == "ResourceNotFoundException"

    # Delete: every grant retired, the certificates and the principal gone.
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="demo-lb", certificateName="cert-a")
    assert len(grants(kms)) == 1
    ops = lightsail.delete_load_balancer(loadBalancerName="demo-lb")["operations"]
    assert ops[0]["operationType"] == "DeleteLoadBalancer"
    assert grants(kms) == []
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn=acm_a)
    assert code(e) == "ResourceNotFoundException"
    creds = configparser.ConfigParser()
    creds.read(tmp_path / "data" / "credentials")
    assert "demo-lb" not in creds and "admin" in creds
    with pytest.raises(ClientError) as e:
        lightsail.get_load_balancer(loadBalancerName="demo-lb")
    assert code(e) == "NotFoundException"


def test_create_with_certificate_and_the_grant_survives_nothing_else(ls: LightsailControl) -> None:
    lightsail, kms = ls.client("lightsail"), ls.client("kms")
    ops = lightsail.create_load_balancer(
        loadBalancerName="lb-one", instancePort=80, certificateName="c1", certificateDomainName="one.example.com"
    )["operations"]
    # As AWS answers it: the load balancer's operation, then the certificate's and the load balancer's.
    assert [(o["operationType"], o["resourceName"], o["status"]) for o in ops] == [
        ("CreateLoadBalancer", "lb-one", "Started"),
        ("CreateLoadBalancerTlsCertificate", "c1", "Succeeded"),
        ("CreateLoadBalancerTlsCertificate", "lb-one", "Succeeded"),
    ]
    ls.issue_pending()
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="lb-one", certificateName="c1")
    (g,) = grants(kms)
    # Revoked behind Lightsail's back: attaching again grants anew.
    kms.revoke_grant(KeyId="alias/aws/acm", GrantId=g["GrantId"])
    assert grants(kms) == []
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="lb-one", certificateName="c1")
    (g2,) = grants(kms)
    assert g2["GrantId"] != g["GrantId"]
    # Attaching the attached certificate again changes nothing.
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="lb-one", certificateName="c1")
    assert [x["GrantId"] for x in grants(kms)] == [g2["GrantId"]]


@pytest.mark.parametrize(
    ("op", "kwargs", "want"),
    [
        ("get_load_balancer", {"loadBalancerName": "nope"}, "NotFoundException"),
        ("create_load_balancer", {"loadBalancerName": "-bad", "instancePort": 80}, "InvalidInputException"),
        ("create_load_balancer", {"loadBalancerName": "admin", "instancePort": 80}, "InvalidInputException"),
        ("create_load_balancer", {"loadBalancerName": "lb", "instancePort": 0}, "InvalidInputException"),
        (
            "create_load_balancer",
            {"loadBalancerName": "lb", "instancePort": 80, "healthCheckPath": "x"},
            "InvalidInputException",
        ),
        (
            "create_load_balancer",
            {"loadBalancerName": "lb", "instancePort": 80, "tlsPolicyName": "nope"},
            "InvalidInputException",
        ),
        (
            "create_load_balancer",
            {"loadBalancerName": "lb", "instancePort": 80, "certificateName": "c"},
            "InvalidInputException",
        ),
        ("get_instance", {"instanceName": "nope"}, "NotFoundException"),
        (
            "attach_instances_to_load_balancer",
            {"loadBalancerName": "nope", "instanceNames": ["web-1"]},
            "NotFoundException",
        ),
        ("get_load_balancer_tls_certificates", {"loadBalancerName": "nope"}, "NotFoundException"),
    ],
)
def test_invalid_inputs_get_lightsail_codes(ls: LightsailControl, op: str, kwargs: dict[str, Any], want: str) -> None:
    lightsail = ls.client("lightsail")
    with pytest.raises(ClientError) as e:
        getattr(lightsail, op)(**kwargs)
    assert code(e) == want
    body = e.value.response["Error"]
    assert body["Message"]


def test_errors_on_an_existing_load_balancer(ls: LightsailControl) -> None:
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(loadBalancerName="lb-x", instancePort=80)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("create_load_balancer", {"loadBalancerName": "lb-x", "instancePort": 80}, "InvalidInputException"),
        (
            "attach_instances_to_load_balancer",
            {"loadBalancerName": "lb-x", "instanceNames": ["ghost"]},
            "NotFoundException",
        ),
        (
            "detach_instances_from_load_balancer",
            {"loadBalancerName": "lb-x", "instanceNames": ["web-1"]},
            "InvalidInputException",
        ),
        (
            "update_load_balancer_attribute",
            {"loadBalancerName": "lb-x", "attributeName": "SessionStickinessEnabled", "attributeValue": "maybe"},
            "InvalidInputException",
        ),
        (
            "update_load_balancer_attribute",
            {"loadBalancerName": "lb-x", "attributeName": "TlsPolicyName", "attributeValue": "TLS-1"},
            "InvalidInputException",
        ),
        (
            "create_load_balancer_tls_certificate",
            {"loadBalancerName": "lb-x", "certificateName": "c", "certificateDomainName": "*.example.com"},
            "InvalidInputException",
        ),
        (
            "create_load_balancer_tls_certificate",
            {
                "loadBalancerName": "lb-x",
                "certificateName": "ca",
                "certificateDomainName": "a.example.com",
                "certificateAlternativeNames": [f"n{i}.example.com" for i in range(10)],
            },
            "InvalidInputException",
        ),
        (
            "attach_load_balancer_tls_certificate",
            {"loadBalancerName": "lb-x", "certificateName": "ghost"},
            "NotFoundException",
        ),
        (
            "delete_load_balancer_tls_certificate",
            {"loadBalancerName": "lb-x", "certificateName": "ghost"},
            "NotFoundException",
        ),
        (
            "get_load_balancer_metric_data",
            {
                "loadBalancerName": "lb-x",
                "metricName": "RequestCount",
                "period": 61,
                "startTime": 0,
                "endTime": 600,
                "unit": "Count",
                "statistics": ["Sum"],
            },
            "InvalidInputException",
        ),
    ]
    for op, kwargs, want in cases:
        with pytest.raises(ClientError) as e:
            getattr(lightsail, op)(**kwargs)
        assert code(e) == want, (op, kwargs)
    # Lightsail's error body: code, docs, message, tip (botocore parses the modeled members).
    resp = e.value.response
    assert resp["Error"]["Message"].startswith("The period must be a multiple of 60")
    assert resp["code"] == "InvalidInputException" and resp["docs"].startswith("https://") and resp["tip"]


def test_a_load_balancer_role_may_read_but_not_change(ls: LightsailControl) -> None:
    admin = ls.client("lightsail")
    admin.create_load_balancer(loadBalancerName="lb-r", instancePort=80)
    mine = ls.client("lightsail", ls.principal("lb-r"))
    assert mine.get_load_balancer(loadBalancerName="lb-r")["loadBalancer"]["name"] == "lb-r"
    with pytest.raises(ClientError) as e:
        mine.update_load_balancer_attribute(
            loadBalancerName="lb-r", attributeName="HealthCheckPath", attributeValue="/x"
        )
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        mine.delete_load_balancer(loadBalancerName="lb-r")
    assert code(e) == "AccessDeniedException"


def test_audit_records_name_the_load_balancer_by_its_arn(ls: LightsailControl) -> None:
    """CloudTrail's ``resources[].ARN`` is an ARN: the load balancer's, not its name (a new one's too)."""
    import json

    client = ls.client("lightsail")
    client.create_load_balancer(loadBalancerName="audited-lb", instancePort=80)
    arn = client.get_load_balancer(loadBalancerName="audited-lb")["loadBalancer"]["arn"]
    client.update_load_balancer_attribute(
        loadBalancerName="audited-lb", attributeName="HealthCheckPath", attributeValue="/health"
    )
    assert ls.plane is not None
    records = [json.loads(line) for line in ls.plane.audit.path.read_text().splitlines()]
    mine = [r for r in records if (r.get("requestParameters") or {}).get("loadBalancerName") == "audited-lb"]
    assert {r["eventName"] for r in mine} >= {"CreateLoadBalancer", "GetLoadBalancer", "UpdateLoadBalancerAttribute"}
    for record in mine:
        assert record["resources"] == [
            {"ARN": arn, "accountId": "000000000000", "type": "AWS::Lightsail::LoadBalancer"}
        ], record
