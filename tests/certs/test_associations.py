"""A certificate on a load balancer: the grant, the re-wrapped bundle, and the data plane's Decrypt.

The load balancer side is played the way the data plane will do it: a boto3 KMS client signed as the
load balancer's role decrypts the bundle's data key under the two-key context, then
``open_sealed_key`` (which imports nothing from the control plane) opens the private key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from awserrors import code
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lbproxy.certs import keys
from lbproxy.certs.errors import InvalidStateException, RequestInProgressException
from lbproxy.certs.manager import CertificateManager
from lbproxy.contract.sealed import open_sealed_key, pem_private_key, wipe
from lbproxy.core.clock import ManualClock
from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread

LB_ARN = "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/0c1d7d0e-8a44-4d8c-9c61-b8d0f7d4b1a2"
OTHER_LB = "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/1c1d7d0e-8a44-4d8c-9c61-b8d0f7d4b1a2"


@pytest.fixture
def role(acm_control: ControlThread) -> Principal:
    plane = acm_control.plane
    assert plane is not None
    return acm_control.call(lambda: plane.principals.ensure_role("lb-web"))


def _spki(pem: str) -> bytes:
    return (
        x509.load_pem_x509_certificate(pem.encode())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _open_as(kms: Any, bundle: dict[str, Any]) -> bytearray:
    """What the data plane does: Decrypt under the grant, open the key, wipe the data key."""
    resp = kms.decrypt(
        CiphertextBlob=base64.b64decode(bundle["EncryptedDataKey"]),
        EncryptionContext=bundle["EncryptionContext"],
        KeyId=bundle["KeyId"],
    )
    data_key = bytearray(resp["Plaintext"])
    try:
        return open_sealed_key(bundle, data_key)
    finally:
        wipe(data_key)


def test_associate_seal_for_and_decrypt_under_the_grant(
    acm: Any,
    issue: Callable[..., str],
    clock: ManualClock,
    acm_control: ControlThread,
    manager: CertificateManager,
    role: Principal,
) -> None:
    arn = issue("lb.example.com", KeyAlgorithm="EC_prime256v1")
    grant_id = acm_control.call(lambda: manager.associate(arn, LB_ARN, role.arn))
    assert acm_control.call(lambda: manager.associate(arn, LB_ARN, role.arn)) == grant_id  # idempotent
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["InUseBy"] == [LB_ARN]

    kms_admin = acm_control.client("kms")
    grants = kms_admin.list_grants(KeyId="alias/aws/acm")["Grants"]
    (grant,) = [g for g in grants if g["GrantId"] == grant_id]
    assert grant["Name"] == "IssuedThroughACM" and grant["GranteePrincipal"] == role.arn
    assert sorted(grant["Operations"]) == ["Decrypt", "DescribeKey"]
    assert grant["RetiringPrincipal"] == "acm.amazonaws.com"
    assert grant["Constraints"] == {"EncryptionContextEquals": {"aws:acm:arn": arn, "aws:lightsail:arn": LB_ARN}}

    bundle = json.loads(json.dumps(acm_control.call(lambda: manager.seal_for(arn, LB_ARN))))
    assert bundle["CertificateArn"] == arn and bundle["Algorithm"] == "AES_256_GCM"
    assert bundle["EncryptionContext"] == {"aws:acm:arn": arn, "aws:lightsail:arn": LB_ARN}
    assert bundle["Certificate"] == acm.get_certificate(CertificateArn=arn)["Certificate"]
    assert len(x509.load_pem_x509_certificates(bundle["CertificateChain"].encode())) == 2
    assert "PRIVATE KEY" not in json.dumps(bundle)

    kms_lb = acm_control.client("kms", role)
    der = _open_as(kms_lb, bundle)
    key = keys.from_der(der)
    pem = pem_private_key(der)
    wipe(der)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == _spki(bundle["Certificate"])
    reloaded = serialization.load_pem_private_key(pem, None)
    assert isinstance(reloaded, type(key)) and reloaded.private_numbers() == key.private_numbers()
    wipe(pem)

    # The load balancer cannot use the key outside its own context, nor can the admin use its bundle.
    with pytest.raises(ClientError) as e:
        kms_lb.decrypt(
            CiphertextBlob=base64.b64decode(bundle["EncryptedDataKey"]),
            EncryptionContext={"aws:acm:arn": arn, "aws:lightsail:arn": OTHER_LB},
        )
    assert code(e) in ("AccessDeniedException", "InvalidCiphertextException")
    with pytest.raises(ClientError) as e:
        _open_as(kms_admin, bundle)
    assert code(e) == "AccessDeniedException"
    # The stored (one-key context) data key is ACM's alone.
    stored = acm_control.call(lambda: manager._load(arn))
    with pytest.raises(ClientError) as e:
        kms_lb.decrypt(CiphertextBlob=stored.sealed.encrypted_data_key, EncryptionContext={"aws:acm:arn": arn})
    assert code(e) == "AccessDeniedException"

    # Renewal: same ARN, new key; the same grant opens the new bundle.
    acm.renew_certificate(CertificateArn=arn)
    renewed = json.loads(json.dumps(acm_control.call(lambda: manager.seal_for(arn, LB_ARN))))
    assert renewed["Serial"] != bundle["Serial"]
    der2 = _open_as(kms_lb, renewed)
    assert keys.from_der(der2).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == _spki(renewed["Certificate"])
    wipe(der2)

    # Detach: ACM retires the grant; the load balancer can no longer decrypt.
    acm_control.call(lambda: manager.disassociate(arn, LB_ARN))
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["InUseBy"] == []
    with pytest.raises(ClientError) as e:
        _open_as(kms_lb, renewed)
    assert code(e) == "AccessDeniedException"
    plane = acm_control.plane
    assert plane is not None
    types = [ev.type for ev in acm_control.call(lambda: plane.events.since(0, role))]
    assert types.count("grant.created") == 1 and "grant.retired" in types and "certificate.renewed" in types
    acm.delete_certificate(CertificateArn=arn)


def test_seal_for_requires_an_issued_associated_certificate(
    acm: Any,
    issue: Callable[..., str],
    clock: ManualClock,
    acm_control: ControlThread,
    manager: CertificateManager,
    role: Principal,
) -> None:
    pending = acm.request_certificate(DomainName="pending.example.com")["CertificateArn"]
    with pytest.raises(RequestInProgressException):
        acm_control.call(lambda: manager.associate(pending, LB_ARN, role.arn))
    arn = issue("lb2.example.com")
    with pytest.raises(InvalidStateException):
        acm_control.call(lambda: manager.seal_for(arn, LB_ARN))
    acm_control.call(lambda: manager.add_in_use(arn, LB_ARN))
    bundle = acm_control.call(lambda: manager.seal_for(arn, LB_ARN))
    assert bundle["CertificateArn"] == arn
    # Without a grant, the load balancer's role cannot decrypt its bundle.
    with pytest.raises(ClientError) as e:
        _open_as(acm_control.client("kms", role), bundle)
    assert code(e) == "AccessDeniedException"
