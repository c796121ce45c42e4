"""Tags (Lightsail's rules, AWS's refusal to tag load-balancer certificates), SetIpAddressType and
``ipAddressType`` (stored, announced, in the data plane's configuration), GetLoadBalancers / GetInstances
pages, GetInstance(s) ``accessType`` from the model's enum, and metric datapoints on whole minutes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import botocore.session
import pytest
from awserrors import code
from botocore.exceptions import ClientError
from lightsail_helpers import LightsailControl

from lbproxy.certs.manager import LIGHTSAIL_OWNER
from lbproxy.contract.dataplane import DataPlaneConfig
from lbproxy.lightsail import metrics as M
from lbproxy.lightsail import pages

CONFIG = "/dataplane/v1/load-balancers/{}"


def refused(call: Any, want: str = "InvalidInputException", **kwargs: Any) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert code(e) == want, (kwargs, e.value)
    return str(e.value.response["Error"]["Message"])


def tags_of(ls: Any, name: str) -> list[dict[str, str]]:
    return list(ls.get_load_balancer(loadBalancerName=name)["loadBalancer"]["tags"])


def test_tags_on_a_load_balancer_follow_lightsails_rules(ls: LightsailControl) -> None:
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(
        loadBalancerName="lb-t", instancePort=80, tags=[{"key": "env", "value": "dev"}, {"key": "keyonly"}]
    )
    assert tags_of(lightsail, "lb-t") == [{"key": "env", "value": "dev"}, {"key": "keyonly", "value": ""}]

    (op,) = lightsail.tag_resource(
        resourceName="lb-t", tags=[{"key": "env", "value": "prod"}, {"key": "team", "value": "a b+c-d=e.f_g:h/i@j"}]
    )["operations"]
    assert (op["operationType"], op["resourceName"], op["status"]) == ("TagResource", "lb-t", "Succeeded")
    assert tags_of(lightsail, "lb-t") == [
        {"key": "env", "value": "prod"},
        {"key": "keyonly", "value": ""},
        {"key": "team", "value": "a b+c-d=e.f_g:h/i@j"},
    ]
    (op,) = lightsail.untag_resource(resourceName="lb-t", tagKeys=["keyonly", "never-there"])["operations"]
    assert op["operationType"] == "UntagResource"
    assert [t["key"] for t in tags_of(lightsail, "lb-t")] == ["env", "team"]
    arn = lightsail.get_load_balancer(loadBalancerName="lb-t")["loadBalancer"]["arn"]
    lightsail.tag_resource(resourceName="lb-t", resourceArn=arn, tags=[{"key": "Env", "value": "x"}])
    assert {t["key"] for t in tags_of(lightsail, "lb-t")} == {"env", "Env", "team"}  # case-sensitive

    for tags, fragment in [
        ([{"key": "aws:owner", "value": "x"}], "reserved"),
        ([{"key": "AWS:owner", "value": "x"}], "reserved"),
        ([{"key": "owner", "value": "aws:x"}], "reserved"),
        ([{"key": "k" * 129, "value": "x"}], "tag key"),
        ([{"key": "k", "value": "v" * 257}], "tag value"),
        ([{"key": "bad!", "value": "x"}], "tag key"),
        ([{"key": "a", "value": "1"}, {"key": "a", "value": "2"}], "unique"),
        ([{"key": f"k{i}"} for i in range(48)], "maximum of 50"),
        ([{"value": "no key"}], "key"),
    ]:
        assert fragment in refused(lightsail.tag_resource, resourceName="lb-t", tags=tags)
    for tags in ([{"key": "aws:owner"}], [{"key": f"k{i}"} for i in range(51)], [{"key": "a"}, {"key": "a"}]):
        refused(lightsail.create_load_balancer, loadBalancerName="lb-u", instancePort=80, tags=tags)
    refused(lightsail.untag_resource, resourceName="lb-t", tagKeys=["aws:created"])
    lightsail.tag_resource(resourceName="lb-t", tags=[{"key": f"k{i}"} for i in range(47)])  # 3 + 47 = 50
    assert len(tags_of(lightsail, "lb-t")) == 50


def test_what_cannot_be_tagged_is_refused_as_aws_refuses_it(ls: LightsailControl) -> None:
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(loadBalancerName="lb-c", instancePort=80)
    lightsail.create_load_balancer_tls_certificate(
        loadBalancerName="lb-c", certificateName="cert-c", certificateDomainName="c.example.com"
    )
    cert = lightsail.get_load_balancer_tls_certificates(loadBalancerName="lb-c")["tlsCertificates"][0]
    message = refused(lightsail.tag_resource, resourceName="cert-c", tags=[{"key": "k", "value": "v"}])
    assert message == "The resource type, LoadBalancerTlsCertificate, is not taggable."
    refused(lightsail.tag_resource, resourceName="cert-c", resourceArn=cert["arn"], tags=[{"key": "k"}])
    refused(lightsail.untag_resource, resourceName="cert-c", tagKeys=["k"])
    # lbproxy does not emulate instance tags: InternalFailure with HTTP 501, as every operation it does not emulate.
    with pytest.raises(ClientError) as e:
        lightsail.tag_resource(resourceName="web-1", tags=[{"key": "k"}])
    assert code(e) == "InternalFailure" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "instances" in e.value.response["Error"]["Message"]
    refused(lightsail.tag_resource, "NotFoundException", resourceName="nothing", tags=[{"key": "k"}])
    arn = lightsail.get_load_balancer(loadBalancerName="lb-c")["loadBalancer"]["arn"]
    other = arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    refused(lightsail.tag_resource, "NotFoundException", resourceName="lb-c", resourceArn=other, tags=[{"key": "k"}])
    mine = ls.client("lightsail", ls.principal("lb-c"))
    refused(mine.tag_resource, "AccessDeniedException", resourceName="lb-c", tags=[{"key": "k"}])


def test_set_ip_address_type_is_stored_announced_and_configured(ls: LightsailControl, signed: Any, events: Any) -> None:
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(loadBalancerName="lb-ip", instancePort=80)
    lightsail.create_load_balancer(loadBalancerName="lb-v4", instancePort=80, ipAddressType="ipv4")
    assert lightsail.get_load_balancer(loadBalancerName="lb-ip")["loadBalancer"]["ipAddressType"] == "dualstack"
    assert lightsail.get_load_balancer(loadBalancerName="lb-v4")["loadBalancer"]["ipAddressType"] == "ipv4"
    me = ls.principal("lb-ip")
    status, cfg = signed(ls.url, me, "GET", CONFIG.format("lb-ip"))
    assert status == 200 and cfg["ipAddressType"] == "dualstack"
    assert DataPlaneConfig.from_json(cfg).ip_address_type == "dualstack"
    start = cfg["lastEventId"]

    (op,) = lightsail.set_ip_address_type(resourceType="LoadBalancer", resourceName="lb-ip", ipAddressType="ipv4")[
        "operations"
    ]
    assert (op["operationType"], op["resourceType"], op["status"]) == ("SetIpAddressType", "LoadBalancer", "Started")
    ls.clock.advance(seconds=1)  # type: ignore[attr-defined]
    assert lightsail.get_operation(operationId=op["id"])["operation"]["status"] == "Succeeded"
    assert lightsail.get_load_balancer(loadBalancerName="lb-ip")["loadBalancer"]["ipAddressType"] == "ipv4"
    (event,) = events(ls.url, me, after=start, want=1)
    assert event["type"] == "loadbalancer.attribute_changed"
    assert (event["detail"]["attributeName"], event["detail"]["ipAddressType"]) == ("IpAddressType", "ipv4")
    status, cfg = signed(ls.url, me, "GET", CONFIG.format("lb-ip"))
    assert cfg["ipAddressType"] == "ipv4"
    # Setting what it is already changes nothing and announces nothing.
    lightsail.set_ip_address_type(resourceType="LoadBalancer", resourceName="lb-ip", ipAddressType="ipv4")
    assert events(ls.url, me, after=event["id"], want=1, timeout=0.5) == []

    # Other resource types: as AWS answers for what lbproxy does not have or cannot change.
    refused(lightsail.set_ip_address_type, "NotFoundException", resourceType="LoadBalancer", resourceName="gone",
            ipAddressType="ipv4")  # fmt: skip
    for rtype, name in (("Instance", "web-1"), ("Distribution", "cdn")):
        with pytest.raises(ClientError) as e:
            lightsail.set_ip_address_type(resourceType=rtype, resourceName=name, ipAddressType="ipv4")
        assert code(e) == "InternalFailure" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        assert f"for {rtype} resources" in e.value.response["Error"]["Message"]
    assert "Distribution, Instance, LoadBalancer" in refused(
        lightsail.set_ip_address_type, resourceType="Disk", resourceName="d", ipAddressType="ipv4"
    )
    refused(lightsail.set_ip_address_type, resourceType="LoadBalancer", resourceName="lb-ip", ipAddressType="v6")
    refused(lightsail.create_load_balancer, loadBalancerName="lb-x", instancePort=80, ipAddressType="v6")
    mine = ls.client("lightsail", me)
    refused(mine.set_ip_address_type, "AccessDeniedException", resourceType="LoadBalancer", resourceName="lb-ip",
            ipAddressType="dualstack")  # fmt: skip


def test_load_balancers_and_instances_come_in_pages(ls: LightsailControl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    lightsail = ls.client("lightsail")
    for name in ("lb-3", "lb-1", "lb-2"):
        lightsail.create_load_balancer(loadBalancerName=name, instancePort=80)
    first = lightsail.get_load_balancers()
    assert [lb["name"] for lb in first["loadBalancers"]] == ["lb-1", "lb-2"]
    second = lightsail.get_load_balancers(pageToken=first["nextPageToken"])
    assert [lb["name"] for lb in second["loadBalancers"]] == ["lb-3"] and "nextPageToken" not in second
    everything = lightsail.get_paginator("get_load_balancers").paginate().build_full_result()
    assert [lb["name"] for lb in everything["loadBalancers"]] == ["lb-1", "lb-2", "lb-3"]
    names = [i["name"] for i in lightsail.get_paginator("get_instances").paginate().build_full_result()["instances"]]
    assert names == ["web-1", "web-2", "web-3"]
    assert "nextPageToken" in lightsail.get_instances()
    refused(lightsail.get_load_balancers, pageToken="%%%")


def test_instance_ports_use_the_models_access_type(ls: LightsailControl) -> None:
    enum = botocore.session.get_session().get_service_model("lightsail").shape_for("PortAccessType").enum
    for inst in ls.client("lightsail").get_instances()["instances"]:
        for port in inst["networking"]["ports"]:
            assert port["accessType"] in enum and port["accessType"] == "Public"


def test_metric_datapoints_start_on_whole_minutes(ls: LightsailControl) -> None:
    # CloudWatch's rounding of StartTime: the minute under 15 days, 5 minutes to 63 days, the hour before.
    now = 1_700_000_000.0
    assert M.round_start(now - 3600 + 34.5, now) == now - 3600 + 34.5 - ((now - 3600 + 34.5) % 60)
    assert M.round_start(now - 20 * 86400 + 7, now) % 300 == 0
    assert M.round_start(now - 90 * 86400 + 7, now) % 3600 == 0
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(loadBalancerName="lb-m", instancePort=80)
    me = ls.principal("lb-m")
    clock_now = ls.clock.time()
    ls.call(lambda: ls.plane.lightsail.report(me, "lb-m", {"metrics": {"RequestCount": 4}}))  # type: ignore[union-attr]
    start = clock_now - 600 + 17.25
    data = lightsail.get_load_balancer_metric_data(
        loadBalancerName="lb-m",
        metricName="RequestCount",
        period=300,
        startTime=dt.datetime.fromtimestamp(start, dt.UTC),
        endTime=dt.datetime.fromtimestamp(clock_now + 60, dt.UTC),
        unit="Count",
        statistics=["Sum"],
    )["metricData"]
    assert sum(p["sum"] for p in data) == 4
    for point in data:
        assert point["timestamp"].timestamp() % 60 == 0


def test_the_data_plane_contract_carries_the_ip_address_type() -> None:
    base = {"name": "lb", "instancePort": 80, "lastEventId": 3}
    assert DataPlaneConfig.from_json(base).ip_address_type == "dualstack"  # a control plane from before: AWS's default
    for kind in ("dualstack", "ipv4", "ipv6"):
        doc = DataPlaneConfig.from_json({**base, "ipAddressType": kind}).to_json()
        assert doc["ipAddressType"] == kind and DataPlaneConfig.from_json(doc).to_json() == doc
    with pytest.raises(ValueError, match="ipAddressType"):
        DataPlaneConfig.from_json({**base, "ipAddressType": "ipv5"})


def test_tls_policy_names_of_a_data_dir_from_before(ls: LightsailControl, signed: Any) -> None:
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(loadBalancerName="lb-old", instancePort=80)
    me = ls.principal("lb-old")

    def store(name: str) -> None:  # what an older lbproxy wrote in ls_load_balancers.attributes
        def write() -> None:
            db = ls.plane.lightsail._db  # type: ignore[union-attr]
            with db.transaction() as tx:
                row = tx.execute("SELECT attributes FROM ls_load_balancers WHERE name = 'lb-old'").fetchone()
                doc = json.loads(row["attributes"])
                doc["tls_policy_name"] = name
                tx.execute("UPDATE ls_load_balancers SET attributes = ? WHERE name = 'lb-old'", (json.dumps(doc),))

        ls.call(write)

    def shown() -> tuple[str, str]:
        lb = lightsail.get_load_balancer(loadBalancerName="lb-old")["loadBalancer"]
        _, cfg = signed(ls.url, me, "GET", CONFIG.format("lb-old"))
        assert lb["configurationOptions"]["TlsPolicyName"] == lb["tlsPolicyName"]
        return lb["tlsPolicyName"], cfg["attributes"]["TlsPolicyName"]

    store("TLS-FS-Res-1-2-2019-08")  # the former name of Lightsail's TLS 1.2 policy
    assert shown() == ("TLS-FS-1-2-Res-2019-08", "TLS-FS-1-2-Res-2019-08")
    store("TLS-FS-Res-1-1-2019-08")  # lbproxy's former third policy: kept, served, not offered
    assert shown() == ("TLS-FS-Res-1-1-2019-08", "TLS-FS-Res-1-1-2019-08")
    refused(
        lightsail.update_load_balancer_attribute,
        loadBalancerName="lb-old",
        attributeName="TlsPolicyName",
        attributeValue="TLS-FS-Res-1-1-2019-08",
    )
    lightsail.update_load_balancer_attribute(
        loadBalancerName="lb-old", attributeName="TlsPolicyName", attributeValue="TLS-FS-Res-1-2-2019-08"
    )
    assert shown() == ("TLS-FS-1-2-Res-2019-08", "TLS-FS-1-2-Res-2019-08")
    names = [p["name"] for p in lightsail.get_load_balancer_tls_policies()["tlsPolicies"]]
    assert names == ["TLS-2016-08", "TLS-FS-1-2-Res-2019-08"]


def test_the_acm_certificates_lightsail_requests_are_lightsails(ls: LightsailControl, tmp_path: Any) -> None:
    lightsail, acm = ls.client("lightsail"), ls.client("acm")
    lightsail.create_load_balancer(loadBalancerName="lb-own", instancePort=80)
    lightsail.create_load_balancer_tls_certificate(
        loadBalancerName="lb-own", certificateName="own-cert", certificateDomainName="own.example.com"
    )
    arn = ls.call(lambda: ls.plane.lightsail._require_cert("lb-own", "own-cert").acm_arn)  # type: ignore[union-attr]
    with pytest.raises(ClientError) as e:  # the account cannot pull it from under Lightsail
        acm.delete_certificate(CertificateArn=arn)
    assert code(e) == "ResourceInUseException" and "lightsail" in e.value.response["Error"]["Message"].lower()

    # One requested before ACM had owners becomes Lightsail's when the control plane starts.
    def owner() -> Any:
        return ls.call(lambda: ls.plane.acm._require(arn).owner)  # type: ignore[union-attr]

    ls.call(lambda: ls.plane.acm.assign_owner(arn, ""))  # type: ignore[union-attr]
    assert owner() is None
    ls.call(lambda: ls.plane.lightsail._own_requested_certificates())  # type: ignore[union-attr]
    assert owner() == LIGHTSAIL_OWNER
    with pytest.raises(ClientError) as e:
        acm.delete_certificate(CertificateArn=arn)
    assert code(e) == "ResourceInUseException"

    # Lightsail itself deletes it with its load-balancer certificate.
    lightsail.delete_load_balancer_tls_certificate(loadBalancerName="lb-own", certificateName="own-cert")
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn=arn)
    assert code(e) == "ResourceNotFoundException"
