"""The contract with the data plane: the configuration endpoint (as the load balancer's own principal),
Decrypt through the grant and nothing else, the event stream, health and metric reports, and lbproxy's
extensions (instances by API, an imported ACM certificate, detach)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import trustme
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lightsail_helpers import LightsailControl

from lbproxy.cli import main
from lbproxy.contract.sealed import open_sealed_key

CONFIG = "/dataplane/v1/load-balancers/{}"


def setup_lb(ls: LightsailControl, name: str, domain: str, *, attach: bool = True) -> None:
    lightsail = ls.client("lightsail")
    lightsail.create_load_balancer(loadBalancerName=name, instancePort=8080)
    lightsail.attach_instances_to_load_balancer(loadBalancerName=name, instanceNames=["web-1", "web-3"])
    lightsail.create_load_balancer_tls_certificate(
        loadBalancerName=name, certificateName=f"{name}-cert", certificateDomainName=domain
    )
    ls.issue_pending()
    if attach:
        lightsail.attach_load_balancer_tls_certificate(loadBalancerName=name, certificateName=f"{name}-cert")


def decrypt(kms: Any, cert: dict[str, Any], context: dict[str, str] | None = None) -> bytes:
    blob = base64.b64decode(cert["bundle"]["EncryptedDataKey"])
    return kms.decrypt(
        CiphertextBlob=blob,
        EncryptionContext=context or cert["encryptionContext"],
        GrantTokens=[cert["grant"]["grantToken"]],
    )["Plaintext"]


def test_configuration_is_for_the_load_balancer_principal_only(ls: LightsailControl, signed: Any) -> None:
    setup_lb(ls, "lb-a", "a.example.com")
    ls.client("lightsail").create_load_balancer(loadBalancerName="lb-b", instancePort=80)
    me, other = ls.principal("lb-a"), ls.principal("lb-b")

    status, cfg = signed(ls.url, me, "GET", CONFIG.format("lb-a"))
    assert status == 200
    assert cfg["name"] == "lb-a" and cfg["principalArn"] == me.arn and cfg["state"] == "active"
    assert cfg["listeners"] == {"http": {"port": 80, "enabled": True}, "https": {"port": 443, "enabled": True}}
    assert cfg["attributes"] == {
        "HealthCheckPath": "/",
        "SessionStickinessEnabled": False,
        "SessionStickiness_LB_CookieDurationSeconds": 86400,
        "HttpsRedirectionEnabled": False,
        "TlsPolicyName": "TLS-2016-08",
    }
    # instancePort is honoured where the address gives none (web-3 = "10.0.0.3").
    assert [(i["name"], i["host"], i["port"], i["state"]) for i in cfg["instances"]] == [
        ("web-1", "127.0.0.1", 8001, "initial"),
        ("web-3", "10.0.0.3", 8080, "initial"),
    ]
    cert = cfg["certificate"]
    assert cert["encryptionContext"] == {"aws:acm:arn": cert["acmCertificateArn"], "aws:lightsail:arn": cfg["arn"]}
    assert cert["bundle"]["EncryptionContext"] == cert["encryptionContext"]
    assert cert["grant"]["active"] is True and cert["grant"]["name"] == "IssuedThroughACM"
    assert cert["kmsKeyArn"] == cert["grant"]["keyArn"]
    assert "BEGIN CERTIFICATE" in cert["certificatePem"] and "BEGIN CERTIFICATE" in cert["chainPem"]
    assert "PRIVATE KEY" not in str(cfg)
    assert cfg["lastEventId"] > 0

    assert signed(ls.url, ls.admin, "GET", CONFIG.format("lb-a"))[0] == 200
    status, err = signed(ls.url, other, "GET", CONFIG.format("lb-a"))
    assert status == 403 and err["__type"] == "AccessDeniedException"
    assert signed(ls.url, other, "GET", CONFIG.format("no-such-lb"))[0] == 403
    status, err = signed(ls.url, ls.admin, "GET", CONFIG.format("no-such-lb"))
    assert err["__type"] == "NotFoundException"
    status, cfg_b = signed(ls.url, other, "GET", CONFIG.format("lb-b"))
    assert status == 200 and cfg_b["certificate"] is None and cfg_b["listeners"]["https"]["enabled"] is False


def test_the_principal_decrypts_its_bundle_and_nothing_else(ls: LightsailControl, signed: Any) -> None:
    setup_lb(ls, "lb-a", "a.example.com")
    setup_lb(ls, "lb-b", "b.example.com")
    me = ls.principal("lb-a")
    kms = ls.client("kms", me)
    cert_a = signed(ls.url, me, "GET", CONFIG.format("lb-a"))[1]["certificate"]
    cert_b = signed(ls.url, ls.admin, "GET", CONFIG.format("lb-b"))[1]["certificate"]

    # The right context: the data key, and with it the private key of the certificate.
    data_key = bytearray(decrypt(kms, cert_a))
    der = open_sealed_key(cert_a["bundle"], data_key)
    key = serialization.load_der_private_key(bytes(der), None)
    leaf = x509.load_pem_x509_certificate(cert_a["certificatePem"].encode())
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    # Not another certificate's key (lb-b's, under lb-b's context or under lb-a's).
    for ctx in (cert_b["encryptionContext"], cert_a["encryptionContext"]):
        with pytest.raises(ClientError):
            decrypt(kms, cert_b, ctx)
    # Not with another context: another load balancer, a missing key, an extra key, ACM's own.
    ctx_a = cert_a["encryptionContext"]
    for ctx in (
        {**ctx_a, "aws:lightsail:arn": cert_b["encryptionContext"]["aws:lightsail:arn"]},
        {"aws:acm:arn": ctx_a["aws:acm:arn"]},
        {**ctx_a, "extra": "x"},
    ):
        with pytest.raises(ClientError):
            decrypt(kms, cert_a, ctx)
    # Not the other operations the grant does not give.
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=cert_a["kmsKeyArn"], Plaintext=b"x", EncryptionContext=ctx_a)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert kms.describe_key(KeyId=cert_a["kmsKeyArn"])["KeyMetadata"]["Arn"] == cert_a["kmsKeyArn"]

    # Not after detach (the bundle it already has is useless now).
    status, _ = signed(
        ls.url, ls.admin, "POST", "/lbproxy/v1/load-balancers/lb-a/tls-certificates/lb-a-cert/detach", {}
    )
    assert status == 200
    with pytest.raises(ClientError) as e:
        decrypt(kms, cert_a)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    cfg = signed(ls.url, me, "GET", CONFIG.format("lb-a"))[1]
    assert cfg["certificate"] is None and cfg["listeners"]["https"]["enabled"] is False
    # Re-attached: a new grant, and the fresh bundle decrypts again.
    ls.client("lightsail").attach_load_balancer_tls_certificate(loadBalancerName="lb-a", certificateName="lb-a-cert")
    fresh = signed(ls.url, me, "GET", CONFIG.format("lb-a"))[1]["certificate"]
    assert fresh["grant"]["grantId"] != cert_a["grant"]["grantId"]
    assert len(decrypt(kms, fresh)) == 32


def test_events_tell_the_data_plane_every_change_in_order(ls: LightsailControl, signed: Any, events: Any) -> None:
    lightsail = ls.client("lightsail")
    setup_lb(ls, "lb-e", "e.example.com", attach=False)
    me = ls.principal("lb-e")
    ls.client("lightsail").create_load_balancer(loadBalancerName="lb-quiet", instancePort=80)
    start = signed(ls.url, me, "GET", CONFIG.format("lb-e"))[1]["lastEventId"]

    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="lb-e", certificateName="lb-e-cert")
    lightsail.update_load_balancer_attribute(
        loadBalancerName="lb-e", attributeName="SessionStickinessEnabled", attributeValue="true"
    )
    lightsail.attach_instances_to_load_balancer(loadBalancerName="lb-e", instanceNames=["web-2"])
    lightsail.update_load_balancer_attribute(
        loadBalancerName="lb-quiet", attributeName="HealthCheckPath", attributeValue="/q"
    )
    lightsail.create_load_balancer_tls_certificate(
        loadBalancerName="lb-e", certificateName="second", certificateDomainName="e.example.com"
    )
    ls.issue_pending()
    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="lb-e", certificateName="second")
    acm_second = signed(ls.url, me, "GET", CONFIG.format("lb-e"))[1]["certificate"]["acmCertificateArn"]
    # A renewal (the account's ACM API may not renew Lightsail's certificate: ACM renews it for Lightsail).
    ls.call(lambda: ls.plane.acm.renew_certificate(acm_second))  # type: ignore[union-attr]
    lightsail.delete_load_balancer_tls_certificate(loadBalancerName="lb-e", certificateName="second", force=True)

    got = events(ls.url, me, after=start, want=10)
    types = [e["type"] for e in got]
    assert types == [
        "grant.created",
        "loadbalancer.certificate_attached",
        "loadbalancer.attribute_changed",
        "loadbalancer.instances_changed",
        "grant.created",  # the swap: new grant first,
        "loadbalancer.certificate_attached",
        "grant.retired",  # then the old one retired
        "certificate.renewed",
        "grant.retired",
        "loadbalancer.certificate_detached",
    ]
    ids = [e["id"] for e in got]
    assert ids == sorted(ids)
    by = dict(zip(types, [e["detail"] for e in got], strict=False))
    swap = got[5]["detail"]
    assert swap["swapped"] is True and swap["previousCertificateName"] == "lb-e-cert"
    assert got[1]["detail"]["swapped"] is False and got[1]["detail"]["grantId"] == got[0]["detail"]["grantId"]
    assert got[6]["detail"]["grantId"] == got[0]["detail"]["grantId"]
    assert by["loadbalancer.attribute_changed"]["attributeName"] == "SessionStickinessEnabled"
    assert by["loadbalancer.attribute_changed"]["value"] is True
    assert by["loadbalancer.instances_changed"]["attached"] == ["web-2"]
    assert by["certificate.renewed"]["certificateArn"] == acm_second
    assert got[9]["detail"]["reason"] == "deleted"
    assert all(e["detail"].get("loadBalancerName", "lb-e") == "lb-e" for e in got)

    # Deleted: the last event for it (its credentials are gone with it; a connected stream still gets this).
    lightsail.delete_load_balancer(loadBalancerName="lb-e")
    later = events(ls.url, ls.admin, after=ids[-1], want=10, timeout=1.0)
    last = [e for e in later if e["type"].startswith("loadbalancer.")][-1]
    assert last["type"] == "loadbalancer.deleted" and last["detail"]["principalArn"] == me.arn


def test_reports_feed_health_and_metrics(ls: LightsailControl, signed: Any, clock: Any) -> None:
    lightsail = ls.client("lightsail")
    setup_lb(ls, "lb-m", "m.example.com", attach=False)
    me = ls.principal("lb-m")
    path = CONFIG.format("lb-m") + "/report"
    t0 = clock.now().replace(second=0, microsecond=0)
    clock.set(t0 + dt.timedelta(seconds=1))
    status, out = signed(
        ls.url,
        me,
        "POST",
        path,
        {
            "instances": [
                {"name": "web-1", "state": "healthy", "reasonCode": None},
                {"name": "web-3", "state": "unhealthy", "reasonCode": "Instance.Timeout"},
                {"name": "web-2", "state": "healthy"},
            ],
            "metrics": {
                "RequestCount": 10,
                "HTTPCode_Instance_2XX_Count": 9,
                "HTTPCode_LB_5XX_Count": 1,
                "InstanceResponseTime_Sum": 0.5,
                "InstanceResponseTime_Count": 9,
                "HealthyHostCount": 1,
                "UnhealthyHostCount": 1,
            },
        },
    )
    assert status == 200 and out["ignoredInstances"] == ["web-2"] and out["accepted"]["instances"] == 2
    clock.set(t0 + dt.timedelta(seconds=90))
    assert signed(ls.url, me, "POST", path, {"metrics": {"RequestCount": 5, "HealthyHostCount": 2}})[0] == 200

    health = lightsail.get_load_balancer(loadBalancerName="lb-m")["loadBalancer"]["instanceHealthSummary"]
    assert health == [
        {"instanceName": "web-1", "instanceHealth": "healthy"},
        {"instanceName": "web-3", "instanceHealth": "unhealthy", "instanceHealthReason": "Instance.Timeout"},
    ]
    q = {"loadBalancerName": "lb-m", "period": 60, "startTime": t0, "endTime": t0 + dt.timedelta(minutes=5)}
    data = lightsail.get_load_balancer_metric_data(
        metricName="RequestCount", unit="Count", statistics=["Sum", "Average"], **q
    )
    assert data["metricName"] == "RequestCount"
    assert [(p["timestamp"], p["sum"], p["average"], p["unit"]) for p in data["metricData"]] == [
        (t0, 10.0, 1.0, "Count"),
        (t0 + dt.timedelta(seconds=60), 5.0, 1.0, "Count"),
    ]
    rt = lightsail.get_load_balancer_metric_data(
        metricName="InstanceResponseTime", unit="Seconds", statistics=["Average", "SampleCount"], **q
    )["metricData"]
    assert rt[0]["average"] == pytest.approx(0.5 / 9) and rt[0]["sampleCount"] == 9
    hh = lightsail.get_load_balancer_metric_data(
        metricName="HealthyHostCount",
        unit="Count",
        statistics=["Maximum"],
        period=300,
        startTime=t0,
        endTime=t0 + dt.timedelta(minutes=5),
        loadBalancerName="lb-m",
    )
    assert [p["maximum"] for p in hh["metricData"]] == [2.0]

    # Only the load balancer's principal (or the admin) reports; bad reports name the field.
    ls.client("lightsail").create_load_balancer(loadBalancerName="lb-n", instancePort=80)
    assert signed(ls.url, ls.principal("lb-n"), "POST", path, {"metrics": {}})[0] == 403
    status, err = signed(ls.url, me, "POST", path, {"instances": [{"name": "web-1", "state": "great"}]})
    assert status == 400 and err["__type"] == "InvalidInputException" and "state" in err["message"]
    status, err = signed(ls.url, me, "POST", path, {"metrics": {"Requests": 1}})
    assert status == 400 and "Requests" in err["message"]


def test_key_state_reports_are_kept_and_announced_when_they_say_something_new(
    ls: LightsailControl, signed: Any, events: Any, clock: Any
) -> None:
    setup_lb(ls, "lb-k", "k.example.com")
    me = ls.principal("lb-k")
    path = CONFIG.format("lb-k") + "/report"
    acm_arn = signed(ls.url, me, "GET", CONFIG.format("lb-k"))[1]["certificate"]["acmCertificateArn"]
    start = events(ls.url, ls.admin, want=100, timeout=1.0)[-1]["id"]

    def report(**key_state: Any) -> None:
        doc = {"state": "loaded", "since": 1000.0, "certificateArn": acm_arn, "fingerprint": "ab" * 32, **key_state}
        status, out = signed(ls.url, me, "POST", path, {"keyState": doc})
        assert status == 200, out

    def stored() -> dict[str, Any]:
        return ls.call(lambda: ls.plane.lightsail.key_states())["lb-k"]  # type: ignore[union-attr]

    report(workers=2, workersExpected=2)
    assert stored() == {
        "state": "loaded",
        "since": 1000.0,
        "certificateArn": acm_arn,
        "serial": None,
        "fingerprint": "ab" * 32,
        "workers": 2,
        "workersExpected": 2,
        "restarts": 0,
        "lastExit": None,
        "degraded": None,
        "listeners": [],
        "reportedAt": clock.time(),
    }
    report(workers=1, workersExpected=2)  # the worker count alone is not news
    report(workers=1, workersExpected=2, restarts=1, lastExit="worker 7 (pid 7) killed by SIGKILL", degraded="1 of 2")
    report(state="wiped", since=1001.0)
    assert stored()["state"] == "wiped" and stored()["restarts"] == 0 and stored()["workers"] == 0

    got = events(ls.url, ls.admin, after=start, want=100, timeout=1.0)
    changes = [e["detail"] for e in got if e["type"] == "loadbalancer.key_state_changed"]
    assert [(c["keyState"]["state"], c["keyState"]["restarts"]) for c in changes] == [
        ("loaded", 0),
        ("loaded", 1),
        ("wiped", 0),
    ]
    assert changes[1]["keyState"]["degraded"] == "1 of 2" and changes[1]["loadBalancerName"] == "lb-k"
    # For the admin (the dashboard) only: the data plane gets no echo of its own reports.
    assert not [e for e in events(ls.url, me, after=start, want=100, timeout=1.0) if "key_state" in e["type"]]

    # A deleted load balancer's last report goes with it.
    ls.client("lightsail").delete_load_balancer(loadBalancerName="lb-k")
    assert "lb-k" not in ls.call(lambda: ls.plane.lightsail.key_states())  # type: ignore[union-attr]


def test_instances_extension_and_reload(ls: LightsailControl, signed: Any, events: Any, instances_file: Path) -> None:
    lightsail = ls.client("lightsail")
    status, out = signed(ls.url, ls.admin, "PUT", "/lbproxy/v1/instances/api-1", {"address": "127.0.0.1:9001"})
    assert status == 200 and out["instance"]["name"] == "api-1" and out["instance"]["state"]["name"] == "running"
    assert lightsail.get_instance(instanceName="api-1")["instance"]["privateIpAddress"] == "127.0.0.1"
    status, listing = signed(ls.url, ls.admin, "GET", "/lbproxy/v1/instances")
    assert {"name": "api-1", "address": "127.0.0.1:9001", "source": "api"} in listing["instances"]
    assert signed(ls.url, ls.admin, "PUT", "/lbproxy/v1/instances/web-1", {"address": "h:1"})[0] == 400
    assert signed(ls.url, ls.admin, "PUT", "/lbproxy/v1/instances/api-2", {"address": "h:0"})[0] == 400
    assert signed(ls.url, ls.admin, "PUT", "/lbproxy/v1/instances/api-2", {"addr": "h:1"})[0] == 400

    lightsail.create_load_balancer(loadBalancerName="lb-i", instancePort=80)
    me = ls.principal("lb-i")
    assert signed(ls.url, me, "PUT", "/lbproxy/v1/instances/api-3", {"address": "h:1"})[0] == 403
    lightsail.attach_instances_to_load_balancer(loadBalancerName="lb-i", instanceNames=["api-1", "web-1", "web-2"])
    start = signed(ls.url, me, "GET", CONFIG.format("lb-i"))[1]["lastEventId"]

    # Re-addressed through the API, re-read from the file (SIGHUP), removed: each tells the data plane.
    signed(ls.url, ls.admin, "PUT", "/lbproxy/v1/instances/api-1", {"address": "127.0.0.1:9002"})
    instances_file.write_text('[instances.web-1]\naddress = "127.0.0.1:8101"\n')
    ls.call(ls.plane.reload_instances)  # type: ignore[union-attr]
    assert signed(ls.url, ls.admin, "DELETE", "/lbproxy/v1/instances/api-1")[0] == 200
    got = events(ls.url, me, after=start, want=4)
    assert [(e["detail"]["changed"], e["detail"]["detached"]) for e in got] == [
        (["api-1"], []),
        ([], ["web-2"]),
        (["web-1"], []),
        ([], ["api-1"]),
    ]
    cfg = signed(ls.url, me, "GET", CONFIG.format("lb-i"))[1]
    assert [(i["name"], i["port"]) for i in cfg["instances"]] == [("web-1", 8101)]
    assert {i["name"] for i in lightsail.get_instances()["instances"]} == {"web-1"}

    # A bad file on SIGHUP changes nothing.
    instances_file.write_text('[instances.web-9]\naddress = "127.0.0.1:1"\ncolour = "red"\n')
    ls.call(ls.plane.reload_instances)  # type: ignore[union-attr]
    assert {i["name"] for i in lightsail.get_instances()["instances"]} == {"web-1"}


def test_an_imported_certificate_can_be_attached_through_the_extension(ls: LightsailControl, signed: Any) -> None:
    acm, lightsail = ls.client("acm"), ls.client("lightsail")
    ca = trustme.CA()
    leaf = ca.issue_cert("imp.example.com")
    acm_arn = acm.import_certificate(
        Certificate=leaf.cert_chain_pems[0].bytes(),
        PrivateKey=leaf.private_key_pem.bytes(),
        CertificateChain=ca.cert_pem.bytes(),
    )["CertificateArn"]
    lightsail.create_load_balancer(loadBalancerName="lb-imp", instancePort=80)
    path = "/lbproxy/v1/load-balancers/lb-imp/tls-certificates"
    me = ls.principal("lb-imp")
    assert signed(ls.url, me, "POST", path, {"certificateName": "mine", "acmCertificateArn": acm_arn})[0] == 403
    status, out = signed(ls.url, ls.admin, "POST", path, {"certificateName": "mine", "acmCertificateArn": acm_arn})
    assert status == 200 and out["tlsCertificate"]["status"] == "ISSUED"
    assert out["tlsCertificate"]["domainName"] == "imp.example.com"
    missing = acm_arn[:-4] + "0000"
    assert signed(ls.url, ls.admin, "POST", path, {"certificateName": "gone", "acmCertificateArn": missing})[0] == 400

    lightsail.attach_load_balancer_tls_certificate(loadBalancerName="lb-imp", certificateName="mine")
    cert = signed(ls.url, me, "GET", CONFIG.format("lb-imp"))[1]["certificate"]
    der = open_sealed_key(cert["bundle"], bytearray(decrypt(ls.client("kms", me), cert)))
    known = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    assert bytes(der) == known.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    # Deleting the Lightsail record leaves the imported certificate in ACM.
    lightsail.delete_load_balancer_tls_certificate(loadBalancerName="lb-imp", certificateName="mine", force=True)
    assert acm.describe_certificate(CertificateArn=acm_arn)["Certificate"]["InUseBy"] == []


def test_cli_rejects_a_bad_instances_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[instances.web-1]\naddress = "127.0.0.1:8001"\nweight = 2\n')
    rc = main(["control", "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0", "--instances", str(bad)])
    assert rc == 2
    assert "instances.web-1: unknown key(s): weight" in capsys.readouterr().err
