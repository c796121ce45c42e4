"""Lightsail's operations: every change is recorded and read back with GetOperation, GetOperations (paged) and
GetOperationsForResource; what AWS completes later is ``Started`` for a configurable delay of the control
plane's clock, then ``Succeeded`` (or ``Failed`` with its error); the limits are settings; errors carry a
``code`` every SDK classifies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awserrors import code
from botocore.exceptions import ClientError
from lightsail_helpers import VALIDATION_DELAY, LightsailControl

from lbproxy.cli import build_parser, control_settings
from lbproxy.config import ConfigError, ControlSettings
from lbproxy.core.clock import ManualClock
from lbproxy.lightsail import pages


def epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


@pytest.fixture
def slow(tmp_path: Path, clock: ManualClock, instances_file: Path) -> Iterator[LightsailControl]:
    """A control plane whose load balancers provision for 30 s and whose other operations take 10 s."""
    ct = LightsailControl(
        tmp_path / "data",
        clock=clock,
        validation_delay=VALIDATION_DELAY,
        instances_file=instances_file,
        lb_provisioning_delay=30.0,
        lb_operation_delay=10.0,
    )
    ct.start()
    try:
        yield ct
    finally:
        ct.stop()


def test_operations_are_started_then_succeeded_and_read_back(slow: LightsailControl, clock: ManualClock) -> None:
    ls = slow.client("lightsail")
    (create,) = ls.create_load_balancer(loadBalancerName="lb-1", instancePort=80)["operations"]
    assert (create["status"], create["isTerminal"], create["resourceType"]) == ("Started", False, "LoadBalancer")
    assert ls.get_load_balancer(loadBalancerName="lb-1")["loadBalancer"]["state"] == "provisioning"
    got = ls.get_operation(operationId=create["id"])["operation"]
    assert got["status"] == "Started" and got["id"] == create["id"]

    # Attached instances are listed at once; their operations (load balancer's, then instance's) take 10 s.
    attach = ls.attach_instances_to_load_balancer(loadBalancerName="lb-1", instanceNames=["web-1", "web-2"])
    assert [
        (o["resourceType"], o["resourceName"], o.get("operationDetails"), o["status"]) for o in attach["operations"]
    ] == [
        ("LoadBalancer", "lb-1", "web-1", "Started"),
        ("Instance", "web-1", "lb-1", "Started"),
        ("LoadBalancer", "lb-1", "web-2", "Started"),
        ("Instance", "web-2", "lb-1", "Started"),
    ]
    assert attach["operations"][1]["location"]["availabilityZone"] == "us-east-1a"
    health = ls.get_load_balancer(loadBalancerName="lb-1")["loadBalancer"]["instanceHealthSummary"]
    assert [h["instanceName"] for h in health] == ["web-1", "web-2"]
    (update,) = ls.update_load_balancer_attribute(
        loadBalancerName="lb-1", attributeName="SessionStickinessEnabled", attributeValue="true"
    )["operations"]
    assert (update["status"], update["operationDetails"]) == ("Succeeded", "SessionStickinessEnabled")

    clock.advance(seconds=10)
    assert ls.get_operation(operationId=attach["operations"][0]["id"])["operation"]["status"] == "Succeeded"
    assert ls.get_operation(operationId=create["id"])["operation"]["status"] == "Started"
    clock.advance(seconds=20)
    done = ls.get_operation(operationId=create["id"])["operation"]
    assert (done["status"], done["isTerminal"]) == ("Succeeded", True)
    assert epoch(done["statusChangedAt"]) == pytest.approx(epoch(done["createdAt"]) + 30)
    assert ls.get_load_balancer(loadBalancerName="lb-1")["loadBalancer"]["state"] == "active"

    # The load balancer's operations, newest first (as AWS's example answers them).
    for_lb = ls.get_operations_for_resource(resourceName="lb-1")["operations"]
    assert [o["operationType"] for o in for_lb] == [
        "UpdateLoadBalancerAttribute",
        "AttachInstancesToLoadBalancer",
        "AttachInstancesToLoadBalancer",
        "CreateLoadBalancer",
    ]
    assert [o["resourceName"] for o in ls.get_operations_for_resource(resourceName="web-2")["operations"]] == ["web-2"]
    assert ls.get_operations_for_resource(resourceName="nothing-here")["operations"] == []


def test_get_operations_pages_oldest_first(
    slow: LightsailControl, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "OPERATIONS_PAGE_SIZE", 3)
    ls = slow.client("lightsail")
    ls.create_load_balancer(loadBalancerName="lb-p", instancePort=80)
    for n in range(3):
        ls.update_load_balancer_attribute(
            loadBalancerName="lb-p", attributeName="HealthCheckPath", attributeValue=f"/h{n}"
        )
    ls.attach_instances_to_load_balancer(loadBalancerName="lb-p", instanceNames=["web-1"])
    first = ls.get_operations()
    assert len(first["operations"]) == 3 and first["operations"][0]["operationType"] == "CreateLoadBalancer"
    second = ls.get_operations(pageToken=first["nextPageToken"])
    assert len(second["operations"]) == 3 and "nextPageToken" not in second
    ids = [o["id"] for o in first["operations"] + second["operations"]]
    assert len(set(ids)) == 6
    assert [o["id"] for o in ls.get_paginator("get_operations").paginate().build_full_result()["operations"]] == ids
    pages_for_lb = ls.get_operations_for_resource(resourceName="lb-p")
    rest = ls.get_operations_for_resource(resourceName="lb-p", pageToken=pages_for_lb["nextPageToken"])
    assert [o["operationType"] for o in pages_for_lb["operations"] + rest["operations"]] == [
        "AttachInstancesToLoadBalancer",
        "UpdateLoadBalancerAttribute",
        "UpdateLoadBalancerAttribute",
        "UpdateLoadBalancerAttribute",
        "CreateLoadBalancer",
    ]
    for bad in ("nope", pages.encode_token("a-name")):
        with pytest.raises(ClientError) as e:
            ls.get_operations(pageToken=bad)
        assert code(e) == "InvalidInputException"


def test_an_unknown_operation_is_not_found_with_a_code_every_sdk_reads(slow: LightsailControl) -> None:
    ls = slow.client("lightsail")
    with pytest.raises(ClientError) as e:
        ls.get_operation(operationId="00000000-0000-0000-0000-000000000000")
    resp = e.value.response
    # botocore reads __type; aws-sdk-go-v2 (Terraform) prefers the body's code; JS v3 the header or __type.
    assert code(e) == "NotFoundException"
    assert resp["code"] == "NotFoundException"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "NotFoundException"
    assert "00000000-0000-0000-0000-000000000000" in resp["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ls.get_load_balancer(loadBalancerName="ghost")
    assert (code(e), e.value.response["code"]) == ("NotFoundException", "NotFoundException")
    assert e.value.response["Error"]["Message"] == "The LoadBalancer does not exist: ghost"


def test_deleting_a_load_balancer_fails_its_pending_operations(slow: LightsailControl, clock: ManualClock) -> None:
    ls = slow.client("lightsail")
    (create,) = ls.create_load_balancer(loadBalancerName="lb-d", instancePort=80)["operations"]
    ls.create_load_balancer_tls_certificate(
        loadBalancerName="lb-d", certificateName="c-d", certificateDomainName="d.example.com"
    )
    clock.advance(seconds=1)
    ops = ls.delete_load_balancer(loadBalancerName="lb-d")["operations"]
    # As AWS answers it: DeleteLoadBalancer done at once, the certificate's deletion Started.
    assert [(o["operationType"], o["resourceType"], o["status"]) for o in ops] == [
        ("DeleteLoadBalancer", "LoadBalancer", "Succeeded"),
        ("DeleteLoadBalancerTlsCertificate", "LoadBalancerTlsCertificate", "Started"),
        ("DeleteLoadBalancerTlsCertificate", "LoadBalancer", "Started"),
    ]
    failed = ls.get_operation(operationId=create["id"])["operation"]
    assert (failed["status"], failed["isTerminal"], failed["errorCode"]) == ("Failed", True, "NotFoundException")
    assert "lb-d was deleted" in failed["errorDetails"]
    assert epoch(failed["statusChangedAt"]) == pytest.approx(epoch(failed["createdAt"]) + 1)
    clock.advance(seconds=60)  # Failed stays Failed; the deletion's operations finish.
    assert ls.get_operation(operationId=create["id"])["operation"]["status"] == "Failed"
    assert ls.get_operation(operationId=ops[1]["id"])["operation"]["status"] == "Succeeded"
    with pytest.raises(ClientError) as e:
        ls.get_load_balancer(loadBalancerName="lb-d")
    assert code(e) == "NotFoundException"


def test_delays_of_zero_answer_succeeded_at_once(tmp_path: Path, instances_file: Path) -> None:
    ct = LightsailControl(
        tmp_path / "data", instances_file=instances_file, lb_provisioning_delay=0.0, lb_operation_delay=0.0
    ).start()
    try:
        ls = ct.client("lightsail")
        ops = ls.create_load_balancer(loadBalancerName="lb-0", instancePort=80)["operations"]
        ops += ls.attach_instances_to_load_balancer(loadBalancerName="lb-0", instanceNames=["web-1"])["operations"]
        assert {o["status"] for o in ops} == {"Succeeded"}
        assert ls.get_load_balancer(loadBalancerName="lb-0")["loadBalancer"]["state"] == "active"
    finally:
        ct.stop()


def test_the_limits_are_settings(tmp_path: Path, instances_file: Path) -> None:
    ct = LightsailControl(
        tmp_path / "data", instances_file=instances_file, max_load_balancers=2, max_certificates_per_lb=1
    ).start()
    try:
        ls = ct.client("lightsail")
        for name in ("lb-a", "lb-b"):
            ls.create_load_balancer(loadBalancerName=name, instancePort=80)
        with pytest.raises(ClientError) as e:
            ls.create_load_balancer(loadBalancerName="lb-c", instancePort=80)
        assert code(e) == "InvalidInputException" and "maximum number of load balancers (2)" in str(e.value)
        ls.create_load_balancer_tls_certificate(
            loadBalancerName="lb-a", certificateName="c1", certificateDomainName="a.example.com"
        )
        with pytest.raises(ClientError) as e:
            ls.create_load_balancer_tls_certificate(
                loadBalancerName="lb-a", certificateName="c2", certificateDomainName="a.example.com"
            )
        assert code(e) == "InvalidInputException" and "already has 1 certificates" in str(e.value)
        ls.delete_load_balancer(loadBalancerName="lb-b")
        ls.create_load_balancer(loadBalancerName="lb-c", instancePort=80)
    finally:
        ct.stop()


def test_the_defaults_are_lightsails_and_the_settings_are_validated() -> None:
    s = ControlSettings()
    assert (s.max_load_balancers, s.max_certificates_per_lb) == (10, 2)
    assert (s.lb_provisioning_delay, s.lb_operation_delay) == (2.0, 1.0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"lb_provisioning_delay": -1.0}, "lb_provisioning_delay"),
        ({"lb_operation_delay": float("nan")}, "lb_operation_delay"),
        ({"lb_operation_delay": 7200.0}, "lb_operation_delay"),
        ({"max_load_balancers": 0}, "max_load_balancers"),
        ({"max_certificates_per_lb": 0}, "max_certificates_per_lb"),
    ]
    for bad, field in cases:
        with pytest.raises(ConfigError, match=field):
            ControlSettings(**bad)
    args = build_parser().parse_args(
        [
            "control",
            "--lb-provisioning-delay",
            "0.5",
            "--lb-operation-delay",
            "0",
            "--max-load-balancers",
            "20",
            "--max-certificates-per-lb",
            "3",
        ]
    )
    s = control_settings(args)
    assert (s.lb_provisioning_delay, s.lb_operation_delay, s.max_load_balancers, s.max_certificates_per_lb) == (
        0.5,
        0.0,
        20,
        3,
    )
