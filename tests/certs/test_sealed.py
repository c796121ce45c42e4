"""The sealed-key format on values: no key service, no sockets."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lbproxy.certs import keys
from lbproxy.contract.sealed import (
    SealedKey,
    SealedKeyError,
    bundle_to_json,
    open_sealed,
    open_sealed_key,
    pem_private_key,
    scrub_bytes,
    seal,
    wipe,
)

ARN = "arn:aws:acm:us-east-1:000000000000:certificate/11111111-2222-3333-4444-555555555555"
OTHER = "arn:aws:acm:us-east-1:000000000000:certificate/99999999-2222-3333-4444-555555555555"


def _sealed(der: bytearray, dk: bytearray, label: str = ARN) -> SealedKey:
    return seal(der, dk, encrypted_data_key=b"edk", key_arn="arn:kms", label=label, context={"aws:acm:arn": label})


def test_round_trip_and_no_plaintext_field() -> None:
    der = keys.to_der(keys.generate("EC_prime256v1"))
    dk = bytearray(os.urandom(32))
    sealed = _sealed(der, dk)
    doc = sealed.to_json()
    assert set(doc) == {
        "Algorithm",
        "KeyFormat",
        "Label",
        "KeyId",
        "EncryptionContext",
        "EncryptedDataKey",
        "KeyCiphertext",
        "Nonce",
    }
    assert bytes(der) not in json.dumps(doc).encode() and bytes(der) not in sealed.ciphertext
    again = SealedKey.from_json(json.loads(json.dumps(doc)))
    assert again == sealed
    assert open_sealed(again, dk) == der


def test_wrong_key_tamper_and_moved_ciphertext_fail_opaquely() -> None:
    der = keys.to_der(keys.generate("EC_prime256v1"))
    dk = bytearray(os.urandom(32))
    sealed = _sealed(der, dk)
    with pytest.raises(SealedKeyError):
        open_sealed(sealed, bytearray(os.urandom(32)))
    flipped = bytearray(sealed.ciphertext)
    flipped[5] ^= 1
    with pytest.raises(SealedKeyError):
        open_sealed(SealedKey(bytes(flipped), sealed.nonce, b"edk", "arn:kms", ARN, {}), dk)
    # The label (certificate ARN) is bound into the AAD: the same ciphertext under another cert fails.
    with pytest.raises(SealedKeyError):
        open_sealed(SealedKey(sealed.ciphertext, sealed.nonce, b"edk", "arn:kms", OTHER, {}), dk)
    with pytest.raises(SealedKeyError):
        open_sealed(sealed, bytearray(16))


def test_bundle_opens_and_checks_its_certificate() -> None:
    der = keys.to_der(keys.generate("RSA_2048"))
    dk = bytearray(os.urandom(32))
    bundle = bundle_to_json(
        _sealed(der, dk).rewrapped(b"edk2", {"aws:acm:arn": ARN, "aws:lightsail:arn": "arn:lb"}),
        certificate_arn=ARN,
        certificate_pem="CERT",
        chain_pem="CHAIN",
        key_algorithm="RSA_2048",
        serial="01",
        not_after=0.0,
    )
    bundle = json.loads(json.dumps(bundle))
    assert bundle["EncryptionContext"] == {"aws:acm:arn": ARN, "aws:lightsail:arn": "arn:lb"}
    out = open_sealed_key(bundle, dk)
    assert isinstance(out, bytearray) and out == der
    bundle["CertificateArn"] = OTHER
    with pytest.raises(SealedKeyError):
        open_sealed_key(bundle, dk)
    with pytest.raises(SealedKeyError):
        open_sealed_key({"Version": 1, "Nonce": "!!"}, dk)


@pytest.mark.parametrize("algorithm", ["RSA_2048", "EC_prime256v1", "EC_secp384r1"])
def test_pem_private_key_matches_cryptography(algorithm: str) -> None:
    key = keys.generate(algorithm)
    der = keys.to_der(key)
    expected = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = pem_private_key(der)
    assert isinstance(pem, bytearray) and bytes(pem) == expected
    loaded = serialization.load_pem_private_key(pem, None)
    assert isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)


@pytest.mark.parametrize("n", [1, 2, 3, 47, 48, 49, 100])
def test_pem_private_key_padding(n: int) -> None:
    import base64

    data = bytearray(os.urandom(n))
    body = b"".join(bytes(pem_private_key(data)).splitlines()[1:-1])
    assert base64.b64decode(body) == data


def test_wipe_and_scrub() -> None:
    buf = bytearray(b"secret-key-material")
    wipe(buf)
    assert buf == bytearray(len(b"secret-key-material"))
    raw = bytes(bytearray(b"another secret value"))
    scrub_bytes(raw)
    assert raw == bytes(len(raw))
    wipe(None)
