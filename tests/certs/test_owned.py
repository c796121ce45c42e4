"""Certificates another service owns (Lightsail's) are protected from the account's ACM operations, and ACM's tag
rules; with boto3 over a real socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from awserrors import code, message
from botocore.exceptions import ClientError

from lbproxy.certs.manager import LIGHTSAIL_OWNER, CertificateManager
from lbproxy.core.clock import ManualClock
from lbproxy.testing import ControlThread

VALIDATION_DELAY = 5.0  # as in conftest.py
LB_ARN = "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/6f1f2ec6-4bd2-4b8e-9d0e-0d7a3d3c5a11"


def test_a_lightsail_certificate_is_read_only_to_the_account(
    acm: Any, manager: CertificateManager, acm_control: ControlThread, clock: ManualClock
) -> None:
    arn = acm_control.call(
        lambda: manager.request_certificate(
            "lb.example.com", subject_alternative_names=["lb.example.com"], owner=LIGHTSAIL_OWNER
        )
    )
    clock.advance(seconds=VALIDATION_DELAY + 1)
    acm_control.call(lambda: manager.associate(arn, LB_ARN, "arn:aws:iam::000000000000:role/lb"))

    # The account sees it and may tag it...
    detail = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert detail["Status"] == "ISSUED" and detail["InUseBy"] == [LB_ARN]
    assert arn in [s["CertificateArn"] for s in acm.list_certificates()["CertificateSummaryList"]]
    assert "BEGIN CERTIFICATE" in acm.get_certificate(CertificateArn=arn)["Certificate"]
    acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": "seen", "Value": "yes"}])
    assert acm.list_tags_for_certificate(CertificateArn=arn)["Tags"] == [{"Key": "seen", "Value": "yes"}]

    # ...but cannot pull it from under the load balancer, renew it or take its key, attached or not.
    for attached in (True, False):
        if not attached:
            acm_control.call(lambda: manager.disassociate(arn, LB_ARN))
        for call, what in [
            (lambda: acm.delete_certificate(CertificateArn=arn), "deleted"),
            (lambda: acm.renew_certificate(CertificateArn=arn), "renewed"),
            (lambda: acm.export_certificate(CertificateArn=arn, Passphrase=b"passphrase"), "exported"),
        ]:
            with pytest.raises(ClientError) as e:
                call()
            assert code(e) == "ResourceInUseException", what
            assert f"it is managed by {LIGHTSAIL_OWNER} and cannot be {what} through ACM" in message(e)
    with pytest.raises(ClientError) as e:  # no re-import over it either
        acm.import_certificate(CertificateArn=arn, Certificate=b"x", PrivateKey=b"y")
    assert code(e) == "ValidationException"
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"

    # Its owner (Lightsail, inside the control plane) deletes it when its load-balancer certificate goes.
    acm_control.call(lambda: manager.delete_certificate(arn))
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn=arn)
    assert code(e) == "ResourceNotFoundException"


def test_a_lightsail_certificate_made_before_owners_existed_can_be_claimed(
    acm: Any, manager: CertificateManager, acm_control: ControlThread, issue: Callable[..., str]
) -> None:
    """The way Lightsail's load-balancer certificates of an existing data directory become Lightsail's."""
    arn = issue("old.example.com")
    for _ in range(2):  # idempotent
        acm_control.call(lambda: manager.assign_owner(arn, LIGHTSAIL_OWNER))
    with pytest.raises(ClientError) as e:
        acm.delete_certificate(CertificateArn=arn)
    assert code(e) == "ResourceInUseException"
    mine = issue("mine.example.com")  # the account's own certificates are the account's to delete
    acm.delete_certificate(CertificateArn=mine)
    acm_control.call(lambda: manager.assign_owner(arn, None))  # and one given back is the account's again
    acm.delete_certificate(CertificateArn=arn)


def test_tag_rules(acm: Any) -> None:
    arn = acm.request_certificate(DomainName="tags.example.com")["CertificateArn"]
    acm.add_tags_to_certificate(
        CertificateArn=arn,
        Tags=[{"Key": "Ümlaut name", "Value": "名前 1.2/3=4+5-6@7:8_9"}, {"Key": "empty", "Value": ""}],
    )
    assert {t["Key"] for t in acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]} == {"Ümlaut name", "empty"}
    for tags, expect in [
        ([{"Key": "aws:reserved", "Value": "x"}], "InvalidTagException"),
        ([{"Key": "AWS:Reserved"}], "InvalidTagException"),
        ([{"Key": "ok", "Value": "aws:reserved-value"}], "InvalidTagException"),
        ([{"Key": "bad#key", "Value": "x"}], "ValidationException"),
        ([{"Key": "ok", "Value": "bad;value"}], "ValidationException"),
        ([{"Key": "k" * 129}], "ValidationException"),
        ([{"Key": "ok", "Value": "v" * 257}], "ValidationException"),
    ]:
        with pytest.raises(ClientError) as e:
            acm.add_tags_to_certificate(CertificateArn=arn, Tags=tags)
        assert code(e) == expect, tags
    with pytest.raises(ClientError) as e:
        acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": "bad#key"}])
    assert message(e) == (
        "1 validation error detected: Value 'bad#key' at 'tags.1.member.key' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:\/=+\-@]*"
    )
    with pytest.raises(ClientError) as e:  # nor removed
        acm.remove_tags_from_certificate(CertificateArn=arn, Tags=[{"Key": "aws:cloudformation:stack-id"}])
    assert code(e) == "InvalidTagException"
    with pytest.raises(ClientError) as e:  # 2 + 49 > 50
        acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": f"k{i}"} for i in range(49)])
    assert code(e) == "TooManyTagsException"
    acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": f"k{i}"} for i in range(48)])
    assert len(acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]) == 50
    with pytest.raises(ClientError) as e:
        acm.request_certificate(DomainName="t2.example.com", Tags=[{"Key": "aws:x"}])
    assert code(e) == "InvalidTagException"
