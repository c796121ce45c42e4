"""A load balancer's role reads its own load balancer, its instances and its certificate, and nothing else:
every read path a role can reach (Lightsail ``Get*``, ACM, the data-plane API, the event stream), as IAM would
answer with a policy scoped to those resources (``AccessDeniedException``, whether or not the other exists).
The data plane's own calls keep working."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from awserrors import code
from botocore.exceptions import ClientError
from lightsail_helpers import LightsailControl

CONFIG = "/dataplane/v1/load-balancers/{}"


def two_load_balancers(ls: LightsailControl) -> None:
    """lb-a with web-1 and lb-a-cert attached; lb-b with web-2 and lb-b-cert attached; web-3 unattached."""
    admin = ls.client("lightsail")
    for lb, instance in (("lb-a", "web-1"), ("lb-b", "web-2")):
        admin.create_load_balancer(loadBalancerName=lb, instancePort=80)
        admin.attach_instances_to_load_balancer(loadBalancerName=lb, instanceNames=[instance])
        admin.create_load_balancer_tls_certificate(
            loadBalancerName=lb, certificateName=f"{lb}-cert", certificateDomainName=f"{lb}.example.com"
        )
    ls.issue_pending()
    for lb in ("lb-a", "lb-b"):
        admin.attach_load_balancer_tls_certificate(loadBalancerName=lb, certificateName=f"{lb}-cert")


def acm_arn(ls: LightsailControl, lb: str) -> str:
    certs = ls.client("lightsail").get_load_balancer_tls_certificates(loadBalancerName=lb)["tlsCertificates"]
    return ls.call(lambda: ls.plane.lightsail._require_cert(lb, certs[0]["name"]).acm_arn)  # type: ignore[union-attr]


def denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert code(e) == "AccessDeniedException", (call, kwargs)
    return str(e.value.response["Error"]["Message"])


def test_a_role_reads_only_its_own_lightsail_resources(ls: LightsailControl) -> None:
    two_load_balancers(ls)
    role = ls.principal("lb-a")
    mine = ls.client("lightsail", role)

    # Its own load balancer, instances, certificate and metrics.
    assert mine.get_load_balancer(loadBalancerName="lb-a")["loadBalancer"]["name"] == "lb-a"
    assert mine.get_instance(instanceName="web-1")["instance"]["name"] == "web-1"
    certs = mine.get_load_balancer_tls_certificates(loadBalancerName="lb-a")["tlsCertificates"]
    assert [c["name"] for c in certs] == ["lb-a-cert"]
    mine.get_load_balancer_metric_data(
        loadBalancerName="lb-a",
        metricName="RequestCount",
        period=60,
        startTime=0,
        endTime=600,
        unit="Count",
        statistics=["Sum"],
    )
    assert mine.get_load_balancer_tls_policies()["tlsPolicies"]

    # Anyone else's: denied, and a name that does not exist is denied the same way (no existence oracle).
    message = denied(mine.get_load_balancer, loadBalancerName="lb-b")
    assert role.arn in message and "lightsail:GetLoadBalancer" in message
    denied(mine.get_load_balancer, loadBalancerName="no-such-lb")
    denied(mine.get_instance, instanceName="web-2")
    denied(mine.get_instance, instanceName="web-3")
    denied(mine.get_instance, instanceName="no-such-instance")
    denied(mine.get_load_balancer_tls_certificates, loadBalancerName="lb-b")
    denied(
        mine.get_load_balancer_metric_data,
        loadBalancerName="lb-b",
        metricName="RequestCount",
        period=60,
        startTime=0,
        endTime=600,
        unit="Count",
        statistics=["Sum"],
    )
    # Listing everything needs a policy on "*": a role scoped to its resources has none.
    denied(mine.get_load_balancers)
    denied(mine.get_instances)

    # An instance detached from its load balancer is no longer its own.
    ls.client("lightsail").detach_instances_from_load_balancer(loadBalancerName="lb-a", instanceNames=["web-1"])
    denied(mine.get_instance, instanceName="web-1")

    # The admin still reads everything.
    admin = ls.client("lightsail")
    assert {lb["name"] for lb in admin.get_load_balancers()["loadBalancers"]} == {"lb-a", "lb-b"}
    assert {i["name"] for i in admin.get_instances()["instances"]} == {"web-1", "web-2", "web-3"}


def test_a_role_reads_only_its_own_certificate_in_acm(ls: LightsailControl) -> None:
    two_load_balancers(ls)
    role = ls.principal("lb-a")
    acm = ls.client("acm", role)
    own, other = acm_arn(ls, "lb-a"), acm_arn(ls, "lb-b")

    assert acm.describe_certificate(CertificateArn=own)["Certificate"]["Status"] == "ISSUED"
    assert "BEGIN CERTIFICATE" in acm.get_certificate(CertificateArn=own)["Certificate"]
    acm.list_tags_for_certificate(CertificateArn=own)

    message = denied(acm.describe_certificate, CertificateArn=other)
    assert role.arn in message and other in message
    denied(acm.get_certificate, CertificateArn=other)
    denied(acm.list_tags_for_certificate, CertificateArn=other)
    denied(acm.describe_certificate, CertificateArn=other.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000")
    denied(acm.list_certificates)

    # Once its load balancer stops using the certificate, the role loses it too.
    ls.client("lightsail").delete_load_balancer_tls_certificate(
        loadBalancerName="lb-a", certificateName="lb-a-cert", force=True
    )
    ls.client("lightsail").create_load_balancer_tls_certificate(
        loadBalancerName="lb-a", certificateName="later", certificateDomainName="later.example.com"
    )
    denied(acm.describe_certificate, CertificateArn=own)


def test_the_data_plane_api_and_events_are_scoped(ls: LightsailControl, signed: Any, events: Any) -> None:
    two_load_balancers(ls)
    a, b = ls.principal("lb-a"), ls.principal("lb-b")

    # What the data plane itself needs keeps working: its configuration, its report, its events, Decrypt.
    status, cfg = signed(ls.url, a, "GET", CONFIG.format("lb-a"))
    assert status == 200 and [i["name"] for i in cfg["instances"]] == ["web-1"]
    status, out = signed(
        ls.url,
        a,
        "POST",
        CONFIG.format("lb-a") + "/report",
        {"instances": [{"name": "web-1", "state": "healthy"}], "metrics": {"RequestCount": 1}},
    )
    assert status == 200, out
    cert = cfg["certificate"]
    plaintext = ls.client("kms", a).decrypt(
        CiphertextBlob=base64.b64decode(cert["bundle"]["EncryptedDataKey"]),
        EncryptionContext=cert["encryptionContext"],
        GrantTokens=[cert["grant"]["grantToken"]],
    )["Plaintext"]
    assert len(plaintext) == 32

    # Another load balancer's: denied.
    for method, path, payload in (
        ("GET", CONFIG.format("lb-b"), None),
        ("POST", CONFIG.format("lb-b") + "/report", {"instances": []}),
    ):
        status, err = signed(ls.url, a, method, path, payload)
        assert status == 403 and err["__type"] == "AccessDeniedException", (path, err)

    # The event stream carries nothing about lb-b to lb-a's role (and lb-b's role sees its own).
    ls.client("lightsail").update_load_balancer_attribute(
        loadBalancerName="lb-b", attributeName="HealthCheckPath", attributeValue="/b"
    )
    seen = events(ls.url, a, want=100, timeout=1.0)
    assert seen and all(ev["detail"].get("loadBalancerName") in (None, "lb-a") for ev in seen)
    assert all("lb-b" not in str(ev["data"]) for ev in seen)
    assert any(ev["type"] == "loadbalancer.attribute_changed" for ev in events(ls.url, b, want=100, timeout=1.0))
