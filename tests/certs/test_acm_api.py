"""ACM driven with boto3 over a real socket, as a user would (``CertificateManager.*``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from awserrors import code, message
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from lbproxy.certs.manager import CertificateManager
from lbproxy.core.clock import ManualClock
from lbproxy.testing import ControlThread

VALIDATION_DELAY = 5.0  # as in conftest.py

LB_ARN = "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/6f1f2ec6-4bd2-4b8e-9d0e-0d7a3d3c5a11"
MISSING = "arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000"


def serial_of(acm: Any, arn: str) -> str:
    return str(acm.describe_certificate(CertificateArn=arn)["Certificate"]["Serial"])


def test_request_pending_then_issued(acm: Any, clock: ManualClock) -> None:
    arn = acm.request_certificate(
        DomainName="www.example.com",
        SubjectAlternativeNames=["www.example.com", "*.example.com", "API.example.com"],
        ValidationMethod="DNS",
    )["CertificateArn"]
    assert arn.startswith("arn:aws:acm:us-east-1:000000000000:certificate/")
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["Status"] == "PENDING_VALIDATION" and c["Type"] == "AMAZON_ISSUED" and "Serial" not in c
    assert c["SubjectAlternativeNames"] == ["www.example.com", "*.example.com", "api.example.com"]
    assert c["KeyAlgorithm"] == "RSA-2048" and c["RenewalEligibility"] == "INELIGIBLE"
    dvo = {d["DomainName"]: d for d in c["DomainValidationOptions"]}
    assert dvo["*.example.com"]["ValidationDomain"] == "example.com"
    for d in dvo.values():
        rr = d["ResourceRecord"]
        assert d["ValidationStatus"] == "PENDING_VALIDATION" and d["ValidationMethod"] == "DNS"
        assert rr["Type"] == "CNAME" and rr["Name"].endswith(d["ValidationDomain"] + ".")
        assert rr["Name"].startswith("_") and rr["Value"].endswith(".acm-validations.aws.")
    with pytest.raises(ClientError) as e:
        acm.get_certificate(CertificateArn=arn)
    assert code(e) == "RequestInProgressException"

    clock.advance(seconds=VALIDATION_DELAY + 1)
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["Status"] == "ISSUED"
    assert all(d["ValidationStatus"] == "SUCCESS" for d in c["DomainValidationOptions"])
    assert c["Subject"] == "CN=www.example.com" and c["Issuer"] == "lbproxy"
    assert c["SignatureAlgorithm"] == "SHA256WITHRSA" and ":" in c["Serial"]
    assert c["NotAfter"] - c["NotBefore"] >= dt.timedelta(days=395)
    assert {"Name": "TLS_WEB_SERVER_AUTHENTICATION", "OID": "1.3.6.1.5.5.7.3.1"} in c["ExtendedKeyUsages"]
    assert {"Name": "KEY_ENCIPHERMENT"} in c["KeyUsages"] and c["InUseBy"] == []
    assert c["IssuedAt"] >= c["CreatedAt"]
    assert c["Options"] == {"CertificateTransparencyLoggingPreference": "ENABLED", "Export": "DISABLED"}

    got = acm.get_certificate(CertificateArn=arn)
    leaf = x509.load_pem_x509_certificate(got["Certificate"].encode())
    chain = x509.load_pem_x509_certificates(got["CertificateChain"].encode())
    assert len(chain) == 2
    leaf.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])
    assert "PRIVATE" not in json.dumps(got, default=str)


def test_ec_key_algorithms(acm: Any, issue: Callable[..., str], clock: ManualClock) -> None:
    arn = issue("ec.example.com", KeyAlgorithm="EC_prime256v1")
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["KeyAlgorithm"] == "EC-prime256v1" and c["KeyUsages"] == [{"Name": "DIGITAL_SIGNATURE"}]
    leaf = x509.load_pem_x509_certificate(acm.get_certificate(CertificateArn=arn)["Certificate"].encode())
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"DomainName": "example"}, "ValidationException"),
        ({"DomainName": "*.example"}, "ValidationException"),
        ({"DomainName": "ok.example.com", "SubjectAlternativeNames": ["localhostx"]}, "ValidationException"),
        ({"DomainName": "-bad.example.com"}, "ValidationException"),
        ({"DomainName": "a" * 60 + ".example.com"}, "ValidationException"),
        ({"DomainName": "ok.example.com", "SubjectAlternativeNames": ["bad_name.example.com"]}, "ValidationException"),
        (
            {"DomainName": "ok.example.com", "SubjectAlternativeNames": [f"n{i}.example.com" for i in range(101)]},
            "ValidationException",
        ),
        ({"DomainName": "ok.example.com", "KeyAlgorithm": "RSA_1024"}, "ValidationException"),
        ({"DomainName": "ok.example.com", "KeyAlgorithm": "RSA_3072"}, "ValidationException"),
        ({"DomainName": "ok.example.com", "KeyAlgorithm": "RSA_4096"}, "ValidationException"),
        ({"DomainName": "ok.example.com", "KeyAlgorithm": "EC_secp521r1"}, "ValidationException"),
        ({"DomainName": "ok.example.com", "KeyAlgorithm": "RSA_512"}, "ValidationException"),
        (
            {
                "DomainName": "ok.example.com",
                "DomainValidationOptions": [{"DomainName": "other.example.com", "ValidationDomain": "example.com"}],
            },
            "InvalidDomainValidationOptionsException",
        ),
    ],
)
def test_request_rejections(acm: Any, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ClientError) as e:
        acm.request_certificate(**kwargs)
    assert code(e) == error
    if kwargs.get("KeyAlgorithm") in ("RSA_1024", "RSA_3072", "RSA_4096", "EC_secp521r1"):  # for imports only
        assert message(e) == f"Encryption Algorithm {kwargs['KeyAlgorithm']} is not supported in us-east-1 region"


def test_request_key_algorithms_as_acm_issues(acm: Any, issue: Callable[..., str]) -> None:
    for algorithm, shown in (
        ("RSA_2048", "RSA-2048"),
        ("EC_prime256v1", "EC-prime256v1"),
        ("EC_secp384r1", "EC-secp384r1"),
    ):
        arn = issue(f"{algorithm.lower().replace('_', '-')}.example.com", KeyAlgorithm=algorithm)
        assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["KeyAlgorithm"] == shown


def test_idempotency_tokens(acm: Any, clock: ManualClock) -> None:
    a = acm.request_certificate(DomainName="idem.example.com", IdempotencyToken="tok1")["CertificateArn"]
    assert acm.request_certificate(DomainName="idem.example.com", IdempotencyToken="tok1")["CertificateArn"] == a
    assert acm.request_certificate(DomainName="idem.example.com", IdempotencyToken="tok2")["CertificateArn"] != a
    assert acm.request_certificate(DomainName="other.example.com", IdempotencyToken="tok1")["CertificateArn"] != a
    assert acm.request_certificate(DomainName="idem.example.com")["CertificateArn"] != a
    clock.advance(hours=1, seconds=1)
    assert acm.request_certificate(DomainName="idem.example.com", IdempotencyToken="tok1")["CertificateArn"] != a


def test_list_filters_and_pages(acm: Any, clock: ManualClock) -> None:
    rsa = [acm.request_certificate(DomainName=f"r{i}.example.com")["CertificateArn"] for i in range(3)]
    ec = acm.request_certificate(DomainName="e.example.com", KeyAlgorithm="EC_prime256v1")["CertificateArn"]
    exp = acm.request_certificate(DomainName="x.example.com", Options={"Export": "ENABLED"})["CertificateArn"]
    rsa1024 = acm.import_certificate(**_self_signed("old.example.com", rsa_bits=1024))["CertificateArn"]
    rsa4096 = acm.import_certificate(**_self_signed("big.example.com", rsa_bits=4096))["CertificateArn"]
    listed = [s["CertificateArn"] for s in acm.list_certificates()["CertificateSummaryList"]]
    assert listed == [*rsa, exp, rsa1024]  # by default ACM lists RSA_1024 and RSA_2048 certificates only
    everything = acm.list_certificates(Includes={"keyTypes": ["RSA_4096"]})["CertificateSummaryList"]
    assert [s["CertificateArn"] for s in everything] == [rsa4096]
    for arn in (rsa1024, rsa4096):
        acm.delete_certificate(CertificateArn=arn)
    ec_only = acm.list_certificates(Includes={"keyTypes": ["EC_prime256v1"]})["CertificateSummaryList"]
    assert [s["CertificateArn"] for s in ec_only] == [ec] and ec_only[0]["KeyAlgorithm"] == "EC_prime256v1"
    assert ec_only[0]["Status"] == "PENDING_VALIDATION" and ec_only[0]["InUse"] is False
    exportable = acm.list_certificates(Includes={"exportOption": "ENABLED"})["CertificateSummaryList"]
    assert [s["CertificateArn"] for s in exportable] == [exp]
    assert acm.list_certificates(CertificateStatuses=["ISSUED"])["CertificateSummaryList"] == []
    clock.advance(seconds=VALIDATION_DELAY + 1)
    issued = acm.list_certificates(CertificateStatuses=["ISSUED"])["CertificateSummaryList"]
    assert len(issued) == 4 and all(s["Status"] == "ISSUED" and "NotAfter" in s for s in issued)
    page1 = acm.list_certificates(MaxItems=2)
    page2 = acm.list_certificates(MaxItems=2, NextToken=page1["NextToken"])
    assert [s["CertificateArn"] for s in page1["CertificateSummaryList"] + page2["CertificateSummaryList"]] == [
        *rsa,
        exp,
    ]
    assert "NextToken" not in page2
    paginated = [
        s["CertificateArn"]
        for page in acm.get_paginator("list_certificates").paginate(
            Includes={"keyTypes": ["RSA_2048", "EC_prime256v1"]}, PaginationConfig={"PageSize": 1}
        )
        for s in page["CertificateSummaryList"]
    ]
    assert paginated == [*rsa, ec, exp]
    with pytest.raises(ClientError) as e:
        acm.list_certificates(NextToken="garbage")
    assert code(e) == "InvalidArgsException"


def test_tags(acm: Any) -> None:
    arn = acm.request_certificate(DomainName="t.example.com", Tags=[{"Key": "env", "Value": "demo"}])["CertificateArn"]
    acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": "team", "Value": "lb"}, {"Key": "flag"}])
    assert acm.list_tags_for_certificate(CertificateArn=arn)["Tags"] == [
        {"Key": "env", "Value": "demo"},
        {"Key": "team", "Value": "lb"},
        {"Key": "flag"},
    ]
    acm.remove_tags_from_certificate(CertificateArn=arn, Tags=[{"Key": "env", "Value": "other"}, {"Key": "team"}])
    assert acm.list_tags_for_certificate(CertificateArn=arn)["Tags"] == [
        {"Key": "env", "Value": "demo"},
        {"Key": "flag"},
    ]
    with pytest.raises(ClientError) as e:
        acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": "aws:internal", "Value": "x"}])
    assert code(e) == "InvalidTagException"
    with pytest.raises(ClientError) as e:
        acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(49)])
    assert code(e) == "TooManyTagsException"
    with pytest.raises(ClientError) as e:
        acm.list_tags_for_certificate(CertificateArn=MISSING)
    assert code(e) == "ResourceNotFoundException"


def test_unknown_and_malformed_arns(acm: Any) -> None:
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn=MISSING)
    assert code(e) == "ResourceNotFoundException"
    assert message(e) == f"Certificate with arn {MISSING} not found in account 000000000000"
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn="not-an-arn-at-all-really")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        acm.get_certificate(CertificateArn="arn:aws:acm:us-east-1:000000000000:something/else")
    assert code(e) == "InvalidArnException"


def _self_signed(name: str, rsa_bits: int) -> dict[str, bytes]:
    """ImportCertificate's arguments for a self-signed certificate with an RSA key of ``rsa_bits``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return {
        "Certificate": cert.public_bytes(serialization.Encoding.PEM),
        "PrivateKey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }


def _import_material(name: str = "import.example.com") -> tuple[trustme.CA, bytes, bytes]:
    ca = trustme.CA()
    leaf = ca.issue_cert(name, "alt.example.com")
    return ca, leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()


def test_import_and_reimport(acm: Any) -> None:
    ca, cert_pem, key_pem = _import_material()
    arn = acm.import_certificate(
        Certificate=cert_pem,
        PrivateKey=key_pem,
        CertificateChain=ca.cert_pem.bytes(),
        Tags=[{"Key": "src", "Value": "trustme"}],
    )["CertificateArn"]
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["Type"] == "IMPORTED" and c["Status"] == "ISSUED" and "ImportedAt" in c and "CreatedAt" not in c
    assert c["DomainName"] == "import.example.com" and "alt.example.com" in c["SubjectAlternativeNames"]
    assert c["RenewalEligibility"] == "INELIGIBLE" and "DomainValidationOptions" not in c
    got = acm.get_certificate(CertificateArn=arn)
    assert x509.load_pem_x509_certificate(got["Certificate"].encode()) == x509.load_pem_x509_certificate(cert_pem)
    assert got["CertificateChain"] == ca.cert_pem.bytes().decode()
    listed = acm.list_certificates(Includes={"keyTypes": ["RSA_2048", "EC_prime256v1", "EC_secp384r1"]})
    assert arn in [s["CertificateArn"] for s in listed["CertificateSummaryList"]]

    _, cert2, key2 = _import_material("import.example.com")
    assert acm.import_certificate(CertificateArn=arn, Certificate=cert2, PrivateKey=key2)["CertificateArn"] == arn
    assert serial_of(acm, arn) != c["Serial"]
    assert acm.list_tags_for_certificate(CertificateArn=arn)["Tags"] == [{"Key": "src", "Value": "trustme"}]

    with pytest.raises(ClientError) as e:
        acm.import_certificate(CertificateArn=arn, Certificate=cert2, PrivateKey=key2, Tags=[{"Key": "a"}])
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        acm.import_certificate(CertificateArn=MISSING, Certificate=cert2, PrivateKey=key2)
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        acm.import_certificate(Certificate=cert_pem, PrivateKey=key2)
    assert code(e) == "ValidationException" and "does not match" in message(e)
    with pytest.raises(ClientError) as e:
        acm.import_certificate(Certificate=b"not a certificate", PrivateKey=key2)
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        acm.import_certificate(Certificate=cert_pem + cert2, PrivateKey=key2)
    assert code(e) == "ValidationException" and "more than one certificate" in message(e)
    with pytest.raises(ClientError) as e:
        acm.import_certificate(Certificate=cert_pem, PrivateKey=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END")
    assert code(e) == "ValidationException"


def test_export_refused_unless_enabled(acm: Any, issue: Callable[..., str], clock: ManualClock) -> None:
    plain = issue("plain.example.com")
    with pytest.raises(ClientError) as e:
        acm.export_certificate(CertificateArn=plain, Passphrase=b"correct horse")
    assert code(e) == "ValidationException"
    _, cert_pem, key_pem = _import_material()
    imported = acm.import_certificate(Certificate=cert_pem, PrivateKey=key_pem)["CertificateArn"]
    with pytest.raises(ClientError) as e:
        acm.export_certificate(CertificateArn=imported, Passphrase=b"correct horse")
    assert code(e) == "ValidationException"

    pending = acm.request_certificate(DomainName="exp.example.com", Options={"Export": "ENABLED"})["CertificateArn"]
    with pytest.raises(ClientError) as e:
        acm.export_certificate(CertificateArn=pending, Passphrase=b"correct horse")
    assert code(e) == "RequestInProgressException"
    clock.advance(seconds=VALIDATION_DELAY + 1)
    with pytest.raises(ClientError) as e:
        acm.export_certificate(CertificateArn=pending, Passphrase=b"abc")
    assert code(e) == "ValidationException"  # the passphrase has at least 4 bytes

    out = acm.export_certificate(CertificateArn=pending, Passphrase=b"correct horse")
    assert out["PrivateKey"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = serialization.load_pem_private_key(out["PrivateKey"].encode(), b"correct horse")
    leaf = x509.load_pem_x509_certificate(out["Certificate"].encode())
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, pub) == leaf.public_key().public_bytes(
        serialization.Encoding.DER, pub
    )
    assert len(x509.load_pem_x509_certificates(out["CertificateChain"].encode())) == 2
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(out["PrivateKey"].encode(), b"wrong horse")
    summary = acm.list_certificates(Includes={"exportOption": "ENABLED"})["CertificateSummaryList"][0]
    assert summary["Exported"] is True and summary["ExportOption"] == "ENABLED"
    assert acm.describe_certificate(CertificateArn=pending)["Certificate"]["RenewalEligibility"] == "ELIGIBLE"


def test_delete_refused_while_in_use(
    acm: Any, issue: Callable[..., str], clock: ManualClock, acm_control: ControlThread, manager: CertificateManager
) -> None:
    arn = issue()
    acm_control.call(lambda: manager.add_in_use(arn, LB_ARN))
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["InUseBy"] == [LB_ARN] and c["RenewalEligibility"] == "ELIGIBLE"
    with pytest.raises(ClientError) as e:
        acm.delete_certificate(CertificateArn=arn)
    assert code(e) == "ResourceInUseException"
    assert message(e) == f"Certificate {arn} in account 000000000000 is in use."
    acm_control.call(lambda: manager.remove_in_use(arn, LB_ARN))
    acm.delete_certificate(CertificateArn=arn)
    with pytest.raises(ClientError) as e:
        acm.describe_certificate(CertificateArn=arn)
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        acm.delete_certificate(CertificateArn=arn)
    assert code(e) == "ResourceNotFoundException"


def test_managed_renewal_with_injected_clock(
    acm: Any, issue: Callable[..., str], clock: ManualClock, acm_control: ControlThread, manager: CertificateManager
) -> None:
    used = issue("used.example.com")
    idle = issue("idle.example.com")
    plane = acm_control.plane
    assert plane is not None
    role = acm_control.call(lambda: plane.principals.ensure_role("lb-renew"))
    acm_control.call(lambda: manager.add_in_use(used, LB_ARN, principal_arn=role.arn))
    before = acm.describe_certificate(CertificateArn=used)["Certificate"]
    old_pem = acm.get_certificate(CertificateArn=used)["Certificate"]
    assert "RenewalSummary" not in before

    # Into the renewal window (60 days before NotAfter): renewal is pending...
    clock.set(before["NotAfter"].astimezone(dt.UTC) - dt.timedelta(days=59))
    acm_control.call(plane.tick)
    mid = acm.describe_certificate(CertificateArn=used)["Certificate"]
    assert mid["RenewalSummary"]["RenewalStatus"] == "PENDING_AUTO_RENEWAL"
    assert mid["Serial"] == before["Serial"]
    # ...and done once validation has passed: a new certificate and a new key under the same ARN.
    clock.advance(seconds=VALIDATION_DELAY + 1)
    acm_control.call(plane.tick)
    after = acm.describe_certificate(CertificateArn=used)["Certificate"]
    summary = after["RenewalSummary"]
    assert summary["RenewalStatus"] == "SUCCESS" and summary["UpdatedAt"] >= mid["RenewalSummary"]["UpdatedAt"]
    assert all(d["ValidationStatus"] == "SUCCESS" for d in summary["DomainValidationOptions"])
    assert after["Serial"] != before["Serial"] and after["NotAfter"] > before["NotAfter"]
    assert after["Status"] == "ISSUED" and after["InUseBy"] == [LB_ARN]
    new_pem = acm.get_certificate(CertificateArn=used)["Certificate"]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    old_pub = (
        x509.load_pem_x509_certificate(old_pem.encode()).public_key().public_bytes(serialization.Encoding.DER, pub)
    )
    new_pub = (
        x509.load_pem_x509_certificate(new_pem.encode()).public_key().public_bytes(serialization.Encoding.DER, pub)
    )
    assert old_pub != new_pub

    events = acm_control.call(lambda: plane.events.since(0, role))
    renewed = [ev for ev in events if ev.type == "certificate.renewed"]
    assert len(renewed) == 1
    assert renewed[0].detail["certificateArn"] == used and renewed[0].detail["inUseBy"] == [LB_ARN]
    assert renewed[0].detail["serial"] == after["Serial"] and renewed[0].detail["reason"] == "MANAGED_RENEWAL"
    # A certificate nobody uses is not renewed; it expires.
    idle_c = acm.describe_certificate(CertificateArn=idle)["Certificate"]
    assert "RenewalSummary" not in idle_c and idle_c["RenewalEligibility"] == "INELIGIBLE"
    clock.set(idle_c["NotAfter"].astimezone(dt.UTC) + dt.timedelta(seconds=1))
    assert acm.describe_certificate(CertificateArn=idle)["Certificate"]["Status"] == "EXPIRED"
    assert acm.list_certificates(CertificateStatuses=["EXPIRED"])["CertificateSummaryList"][0]["CertificateArn"] == idle


def test_renew_certificate_operation(
    acm: Any, issue: Callable[..., str], clock: ManualClock, manager: CertificateManager, acm_control: ControlThread
) -> None:
    """RenewCertificate renews what DescribeCertificate calls ELIGIBLE (in use or exported, issued, not expired)."""
    idle = issue()
    assert acm.describe_certificate(CertificateArn=idle)["Certificate"]["RenewalEligibility"] == "INELIGIBLE"
    with pytest.raises(ClientError) as e:
        acm.renew_certificate(CertificateArn=idle)
    assert code(e) == "ValidationException" and "not eligible for renewal" in message(e)
    exported = issue("exported.example.com", Options={"Export": "ENABLED"})
    acm.export_certificate(CertificateArn=exported, Passphrase=b"passphrase")
    used = issue("used.example.com")
    acm_control.call(lambda: manager.add_in_use(used, LB_ARN))
    for arn in (exported, used):
        assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["RenewalEligibility"] == "ELIGIBLE"
        serial = serial_of(acm, arn)
        acm.renew_certificate(CertificateArn=arn)
        c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
        assert c["Serial"] != serial and c["RenewalSummary"]["RenewalStatus"] == "SUCCESS"
    clock.set(acm.describe_certificate(CertificateArn=used)["Certificate"]["NotAfter"] + dt.timedelta(seconds=1))
    with pytest.raises(ClientError) as e:  # expired: not renewed any more
        acm.renew_certificate(CertificateArn=used)
    assert code(e) == "ValidationException"
    pending = acm.request_certificate(DomainName="p.example.com")["CertificateArn"]
    with pytest.raises(ClientError) as e:
        acm.renew_certificate(CertificateArn=pending)
    assert code(e) == "RequestInProgressException"
    _, cert_pem, key_pem = _import_material()
    imported = acm.import_certificate(Certificate=cert_pem, PrivateKey=key_pem)["CertificateArn"]
    with pytest.raises(ClientError) as e:
        acm.renew_certificate(CertificateArn=imported)
    assert code(e) == "ValidationException"


def test_roles_may_only_read(
    acm: Any, issue: Callable[..., str], clock: ManualClock, acm_control: ControlThread
) -> None:
    arn = issue()
    plane = acm_control.plane
    assert plane is not None
    role = acm_control.call(lambda: plane.principals.ensure_role("lb-reader"))
    as_role = acm_control.client("acm", role)
    # A role reads only the certificates its load balancer uses (its association names it).
    with pytest.raises(ClientError) as e:
        as_role.describe_certificate(CertificateArn=arn)
    assert code(e) == "AccessDeniedException" and role.arn in message(e)
    acm_control.call(lambda: plane.acm.add_in_use(arn, LB_ARN, principal_arn=role.arn))
    assert as_role.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
    with pytest.raises(ClientError) as e:
        as_role.request_certificate(DomainName="x.example.com")
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        as_role.delete_certificate(CertificateArn=arn)
    assert code(e) == "AccessDeniedException" and role.arn in message(e)


def test_audit_names_certificates_never_keys(
    acm: Any, issue: Callable[..., str], clock: ManualClock, acm_control: ControlThread
) -> None:
    _, cert_pem, key_pem = _import_material()
    arn = acm.import_certificate(Certificate=cert_pem, PrivateKey=key_pem)["CertificateArn"]
    exp = issue("audit.example.com", Options={"Export": "ENABLED"})
    acm.export_certificate(CertificateArn=exp, Passphrase=b"pass-phrase-1")
    plane = acm_control.plane
    assert plane is not None
    text = plane.audit.path.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    imp = next(r for r in records if r["eventName"] == "ImportCertificate")
    assert imp["eventSource"] == "acm.amazonaws.com" and imp["responseElements"] == {"certificateArn": arn}
    assert imp["resources"][0]["ARN"] == arn
    ex = next(r for r in records if r["eventName"] == "ExportCertificate")
    assert ex["requestParameters"] == {"certificateArn": exp}
    assert "PRIVATE KEY" not in text and "pass-phrase-1" not in text
    body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert body[:40] not in text


def test_failed_managed_renewal_is_reported_and_retried(
    acm: Any,
    issue: Callable[..., str],
    clock: ManualClock,
    acm_control: ControlThread,
    manager: CertificateManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lbproxy.awsapi.errors import AwsError

    class DisabledException(AwsError):
        code = "DisabledException"

    arn = issue("flaky.example.com")
    plane = acm_control.plane
    assert plane is not None
    acm_control.call(lambda: manager.add_in_use(arn, LB_ARN))
    before = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    real_seal = manager.vault.seal_key

    def broken(*a: Any, **kw: Any) -> Any:
        raise DisabledException("arn:aws:kms:... is disabled.")

    monkeypatch.setattr(manager.vault, "seal_key", broken)
    clock.set(before["NotAfter"].astimezone(dt.UTC) - dt.timedelta(days=30))
    acm_control.call(plane.tick)
    clock.advance(seconds=VALIDATION_DELAY + 1)
    acm_control.call(plane.tick)
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["RenewalSummary"]["RenewalStatus"] == "FAILED" and c["RenewalSummary"]["RenewalStatusReason"] == "OTHER"
    assert c["Serial"] == before["Serial"] and c["Status"] == "ISSUED"

    monkeypatch.setattr(manager.vault, "seal_key", real_seal)
    clock.advance(hours=1, seconds=1)
    acm_control.call(plane.tick)
    clock.advance(seconds=VALIDATION_DELAY + 1)
    acm_control.call(plane.tick)
    c = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert c["RenewalSummary"]["RenewalStatus"] == "SUCCESS" and c["Serial"] != before["Serial"]


def test_localhost_names_are_an_extension_for_the_local_ca(acm: Any, issue: Callable[..., str]) -> None:
    """ACM's pattern wants two labels; lbproxy also issues exactly ``localhost`` and ``*.localhost``."""
    arn = issue("localhost", SubjectAlternativeNames=["*.localhost", "demo.localhost"])
    leaf = x509.load_pem_x509_certificate(acm.get_certificate(CertificateArn=arn)["Certificate"].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "*.localhost", "demo.localhost"]
