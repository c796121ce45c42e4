"""The Terraform AWS provider's ``aws_lightsail_lb*`` resources, replayed call by call with boto3.

Each of the six resources (``lb``, ``lb_attachment``, ``lb_certificate``, ``lb_certificate_attachment``,
``lb_https_redirection_policy``, ``lb_stickiness_policy``) is created, waited for, read, updated or tagged,
deleted and read again exactly as hashicorp/terraform-provider-aws ``internal/service/lightsail/`` does it:

- every write is followed by ``expandOperations``: the answer must carry ``operations``, and
  ``operations[0].id`` is polled with ``GetOperation`` the way ``waitOperation`` polls it (first after 5 s, then
  at least 3 s apart, backing off; ``Started`` is pending, ``Completed``/``Succeeded`` the target, anything else
  or an error fails the apply). The control plane's clock is moved instead of sleeping.
- a read takes exactly the fields the provider reads (``lb.go`` ``resourceLoadBalancerRead`` and friends);
  fields it dereferences (``createdAt``) must be there, and the values it parses must parse.
- "not found" is decided as the provider decides it with aws-sdk-go-v2: the error code is the body's ``code``,
  else ``__type``, else the ``X-Amzn-ErrorType`` header (``restjson.GetErrorInfo``), and ``IsANotFoundError``
  matches ``*types.NotFoundException`` (that code) or an error text containing ``DoesNotExist``. lbproxy must
  satisfy the first branch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from lightsail_helpers import VALIDATION_DELAY, LightsailControl

from lbproxy.core.clock import ManualClock

#: ``wait.go``: OperationDelay, OperationMinTimeout; ``retry.StateChangeConf`` doubles the wait up to 10 s.
OPERATION_DELAY, OPERATION_MIN_TIMEOUT, MAX_WAIT, TIMEOUT = 5.0, 3.0, 10.0, 30 * 60.0
PENDING, TARGET = ("Started",), ("Completed", "Succeeded")


class Terraform:
    """The provider's helpers (``flex.go``, ``wait.go``, ``status.go``, ``errs.go``) over a boto3 client."""

    def __init__(self, client: Any, clock: ManualClock) -> None:
        self.conn = client
        self.clock = clock
        #: Every status ``waitOperation`` saw, in order (to show the wait was a real one).
        self.seen: list[str] = []

    def expand_operations(self, answer: dict[str, Any]) -> None:
        operations = answer.get("operations") or []
        assert operations, "no operations found for request"
        self.wait_operation(operations[0]["id"])

    def wait_operation(self, oid: str) -> None:
        waited, wait = 0.0, OPERATION_DELAY
        while True:
            self.clock.advance(seconds=wait)
            waited += wait
            output = self.conn.get_operation(operationId=oid)  # statusOperation: any error fails the apply
            assert output.get("operation") is not None, f"retrieving Operation info for operation ({oid})"
            status = output["operation"]["status"]
            self.seen.append(status)
            if status in TARGET:
                return
            assert status in PENDING, f"unexpected state '{status}', wanted target 'Completed, Succeeded'"
            assert waited < TIMEOUT
            wait = min(max(OPERATION_MIN_TIMEOUT, wait * 2), MAX_WAIT)

    @staticmethod
    def go_error_code(exc: ClientError) -> str:
        """aws-sdk-go-v2's ``awsAwsjson11_deserializeOpError*``: the header, overridden by the body's ``code``
        (preferred) or ``__type``."""
        resp = exc.response
        code = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amzn-errortype", "")
        body_code = resp.get("code") or resp["Error"]["Code"]
        code = body_code or code
        return code.split(":")[0].split("#")[-1]

    def is_a_not_found_error(self, exc: ClientError) -> bool:
        """``errs.go`` ``IsANotFoundError``; lbproxy must be recognized by the type, not by the fallback."""
        by_type = self.go_error_code(exc) == "NotFoundException"
        assert by_type, (self.go_error_code(exc), exc.response)
        return by_type or "DoesNotExist" in f"api error {self.go_error_code(exc)}: {exc.response['Error']['Message']}"

    def find_load_balancer(self, name: str) -> dict[str, Any] | None:
        """``FindLoadBalancerById``: None when not found."""
        try:
            return dict(self.conn.get_load_balancer(loadBalancerName=name)["loadBalancer"])
        except ClientError as exc:
            if self.is_a_not_found_error(exc):
                return None
            raise

    def find_certificate(self, lb_name: str, cert_name: str) -> dict[str, Any] | None:
        """``FindLoadBalancerCertificateById``: the load balancer's certificates, searched by name."""
        try:
            certs = self.conn.get_load_balancer_tls_certificates(loadBalancerName=lb_name)["tlsCertificates"]
        except ClientError as exc:
            if self.is_a_not_found_error(exc):
                return None
            raise
        return next((dict(c) for c in certs if c["name"] == cert_name), None)


@pytest.fixture
def tf(tmp_path: Path, clock: ManualClock, instances_file: Path) -> Iterator[tuple[Terraform, LightsailControl]]:
    """A control plane whose operations outlast the provider's first poll (12 s to provision, 8 s otherwise)."""
    ct = LightsailControl(
        tmp_path / "data",
        clock=clock,
        validation_delay=VALIDATION_DELAY,
        instances_file=instances_file,
        lb_provisioning_delay=12.0,
        lb_operation_delay=8.0,
    )
    ct.start()
    try:
        yield Terraform(ct.client("lightsail"), clock), ct
    finally:
        ct.stop()


def read_lb(t: Terraform, name: str) -> dict[str, Any]:
    """``resourceLoadBalancerRead``: the fields it sets, converted as it converts them."""
    lb = t.find_load_balancer(name)
    assert lb is not None
    created = lb["createdAt"]
    assert isinstance(created, dt.datetime)  # lb.CreatedAt.Format(time.RFC3339): nil would panic
    return {
        "arn": lb["arn"],
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dns_name": lb["dnsName"],
        "health_check_path": lb["healthCheckPath"],
        "instance_port": int(lb["instancePort"]),
        "ip_address_type": lb["ipAddressType"],
        "protocol": lb["protocol"],
        "public_ports": [int(p) for p in lb["publicPorts"]],
        "name": lb["name"],
        "support_code": lb["supportCode"],
        "tags": {x["key"]: x.get("value", "") for x in lb["tags"]},
    }


def create_lb(t: Terraform, name: str, tags: dict[str, str]) -> None:
    """``resourceLoadBalancerCreate`` (``health_check_path`` is "/", so it is not sent)."""
    t.expand_operations(
        t.conn.create_load_balancer(
            loadBalancerName=name, instancePort=80, tags=[{"key": k, "value": v} for k, v in tags.items()]
        )
    )


def update_tags(t: Terraform, name: str, old: dict[str, str], new: dict[str, str]) -> None:
    """The generated ``updateTags``: UntagResource for the removed keys, then TagResource for the rest, by name."""
    removed = [k for k in old if k not in new and not k.startswith("aws:")]
    updated = {k: v for k, v in new.items() if old.get(k) != v}
    if removed:
        t.conn.untag_resource(resourceName=name, tagKeys=removed)
    if updated:
        t.conn.tag_resource(resourceName=name, tags=[{"key": k, "value": v} for k, v in updated.items()])


def delete_lb(t: Terraform, name: str) -> None:
    """``resourceLoadBalancerDelete``: NotFoundException is success; otherwise wait."""
    try:
        answer = t.conn.delete_load_balancer(loadBalancerName=name)
    except ClientError as exc:
        assert t.is_a_not_found_error(exc)
        return
    t.expand_operations(answer)


def test_aws_lightsail_lb(tf: tuple[Terraform, LightsailControl]) -> None:
    t, _ = tf
    create_lb(t, "tf-lb", {"env": "dev", "keyonly": ""})
    assert t.seen == ["Started", "Succeeded"]  # provisioning (12 s) outlasted the first poll (5 s)
    state = read_lb(t, "tf-lb")
    assert state["health_check_path"] == "/" and state["ip_address_type"] == "dualstack"  # the schema defaults
    assert state["instance_port"] == 80 and state["protocol"] == "HTTP" and state["public_ports"] == [80]
    assert state["tags"] == {"env": "dev", "keyonly": ""}  # testAccLoadBalancer_keyOnlyTags
    assert state["arn"].startswith("arn:aws:lightsail:") and state["support_code"] and state["dns_name"]

    # Update: health_check_path through UpdateLoadBalancerAttribute + wait; tags by name.
    t.expand_operations(
        t.conn.update_load_balancer_attribute(
            loadBalancerName="tf-lb", attributeName="HealthCheckPath", attributeValue="/health"
        )
    )
    update_tags(t, "tf-lb", state["tags"], {"env": "prod", "team": "web"})
    state = read_lb(t, "tf-lb")
    assert state["health_check_path"] == "/health" and state["tags"] == {"env": "prod", "team": "web"}

    # Delete, then CheckDestroy: GetLoadBalancer must be NotFound as Terraform sees it; a second delete is fine.
    delete_lb(t, "tf-lb")
    assert t.find_load_balancer("tf-lb") is None
    delete_lb(t, "tf-lb")
    # The next apply creates it again: the name is free.
    create_lb(t, "tf-lb", {})
    assert read_lb(t, "tf-lb")["tags"] == {}


def test_aws_lightsail_lb_attachment(tf: tuple[Terraform, LightsailControl]) -> None:
    t, _ = tf
    create_lb(t, "tf-att", {})
    t.expand_operations(t.conn.attach_instances_to_load_balancer(loadBalancerName="tf-att", instanceNames=["web-1"]))

    def attached(instance: str) -> bool:  # resourceLoadBalancerAttachmentRead, FindLoadBalancerAttachmentById
        lb = t.find_load_balancer("tf-att")
        assert lb is not None
        return any(h["instanceName"] == instance for h in lb["instanceHealthSummary"])

    assert attached("web-1")
    t.expand_operations(t.conn.detach_instances_from_load_balancer(loadBalancerName="tf-att", instanceNames=["web-1"]))
    assert not attached("web-1")  # an empty result: gone from state


def test_aws_lightsail_lb_certificate_and_its_attachment(tf: tuple[Terraform, LightsailControl]) -> None:
    t, ct = tf
    create_lb(t, "tf-cert-lb", {})
    t.expand_operations(
        t.conn.create_load_balancer_tls_certificate(
            loadBalancerName="tf-cert-lb",
            certificateName="tf-cert",
            certificateDomainName="www.example.com",
            certificateAlternativeNames=["example.com"],
        )
    )
    cert = t.find_certificate("tf-cert-lb", "tf-cert")  # resourceLoadBalancerCertificateRead
    assert cert is not None
    assert isinstance(cert["createdAt"], dt.datetime)
    assert cert["loadBalancerName"] == "tf-cert-lb" and cert["arn"] and cert["supportCode"]
    # The CustomizeDiff adds domain_name to subject_alternative_names: the API must list the primary domain.
    assert set(cert["subjectAlternativeNames"]) == {"www.example.com", "example.com"}
    assert cert["domainName"] == "www.example.com"
    for record in cert["domainValidationRecords"]:
        assert {record["domainName"], record["name"], record["type"], record["value"]} and record["type"] == "CNAME"
    # The schema comment, as AWS answers it: certificates are not taggable.
    with pytest.raises(ClientError) as e:
        t.conn.tag_resource(resourceName="tf-cert", tags=[{"key": "k", "value": "v"}])
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    assert e.value.response["Error"]["Message"] == "The resource type, LoadBalancerTlsCertificate, is not taggable."

    # aws_lightsail_lb_certificate_attachment, once the certificate is validated (the user's DNS records).
    ct.issue_pending()
    t.expand_operations(
        t.conn.attach_load_balancer_tls_certificate(loadBalancerName="tf-cert-lb", certificateName="tf-cert")
    )
    cert = t.find_certificate("tf-cert-lb", "tf-cert")
    assert cert is not None and cert["isAttached"] is True  # FindLoadBalancerCertificateAttachmentById
    # Its Delete makes no API call ("Cannot destroy Lightsail Load Balancer Certificate Attachment").

    # Delete the certificate (force: it is attached in this replay), then it reads as gone; deleting again is fine.
    t.seen.clear()
    t.expand_operations(
        t.conn.delete_load_balancer_tls_certificate(
            loadBalancerName="tf-cert-lb", certificateName="tf-cert", force=True
        )
    )
    assert t.seen == ["Started", "Succeeded"]  # 8 s: pending at the first poll (5 s), done at the next
    assert t.find_certificate("tf-cert-lb", "tf-cert") is None
    with pytest.raises(ClientError) as e:
        t.conn.delete_load_balancer_tls_certificate(loadBalancerName="tf-cert-lb", certificateName="tf-cert")
    assert t.is_a_not_found_error(e.value)
    delete_lb(t, "tf-cert-lb")
    assert t.find_certificate("tf-cert-lb", "tf-cert") is None  # the load balancer is gone: NotFound, tolerated


def test_aws_lightsail_lb_https_redirection_policy(tf: tuple[Terraform, LightsailControl]) -> None:
    t, ct = tf
    create_lb(t, "tf-https", {})
    lb = t.find_load_balancer("tf-https")
    assert lb is not None and lb["httpsRedirectionEnabled"] is False  # nil would be an empty result
    t.conn.create_load_balancer_tls_certificate(
        loadBalancerName="tf-https", certificateName="tf-https-cert", certificateDomainName="https.example.com"
    )
    ct.issue_pending()
    t.expand_operations(
        t.conn.attach_load_balancer_tls_certificate(loadBalancerName="tf-https", certificateName="tf-https-cert")
    )

    def set_redirect(enabled: bool) -> None:
        t.expand_operations(
            t.conn.update_load_balancer_attribute(
                loadBalancerName="tf-https",
                attributeName="HttpsRedirectionEnabled",
                attributeValue=str(enabled).lower(),
            )
        )

    set_redirect(True)  # Create
    lb = t.find_load_balancer("tf-https")
    assert lb is not None and lb["httpsRedirectionEnabled"] is True
    set_redirect(False)  # Delete
    lb = t.find_load_balancer("tf-https")
    assert lb is not None and lb["httpsRedirectionEnabled"] is False


def test_aws_lightsail_lb_stickiness_policy(tf: tuple[Terraform, LightsailControl]) -> None:
    t, _ = tf
    create_lb(t, "tf-sticky", {})

    def read() -> tuple[bool, int]:  # strconv.ParseBool / strconv.Atoi of configurationOptions
        lb = t.find_load_balancer("tf-sticky")
        assert lb is not None and lb["configurationOptions"] is not None
        opts = lb["configurationOptions"]
        enabled = opts["SessionStickinessEnabled"]
        assert enabled in ("true", "false", "True", "False", "1", "0", "t", "f", "TRUE", "FALSE")
        return enabled.lower() in ("true", "1", "t"), int(opts["SessionStickiness_LB_CookieDurationSeconds"])

    assert read() == (False, 86400)

    def put(name: str, value: str) -> None:
        t.expand_operations(
            t.conn.update_load_balancer_attribute(
                loadBalancerName="tf-sticky", attributeName=name, attributeValue=value
            )
        )

    put("SessionStickinessEnabled", "true")  # Create: the two attributes, in order, each waited for
    put("SessionStickiness_LB_CookieDurationSeconds", "600")
    assert read() == (True, 600)
    put("SessionStickiness_LB_CookieDurationSeconds", "1200")  # Update: the changed one
    assert read() == (True, 1200)
    put("SessionStickinessEnabled", "false")  # Delete
    assert read() == (False, 1200)
