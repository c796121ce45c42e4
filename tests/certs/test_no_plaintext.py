"""No private key in the clear at rest: the SQLite file (and its WAL) and the whole data dir, byte by byte.

Every key the control plane issued (including the ones renewal replaced), every key imported, and the
CA's own keys are looked for as PKCS#8 DER, traditional DER, PEM body (whole and line by line), hex,
and their raw private numbers.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lbproxy.certs import keys
from lbproxy.certs.ca import INTERMEDIATE_KEY, ROOT_KEY, ca_dir
from lbproxy.certs.manager import CertificateManager
from lbproxy.contract.sealed import SealedKey, wipe
from lbproxy.core.clock import ManualClock
from lbproxy.testing import ControlThread

LB_ARN = "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/2c1d7d0e-8a44-4d8c-9c61-b8d0f7d4b1a2"


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def needles(key: keys.PrivateKey) -> dict[str, bytes]:
    nc = serialization.NoEncryption()
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, nc)
    trad = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, nc)
    out = {"pkcs8-der": pkcs8, "traditional-der": trad, "hex": pkcs8.hex().encode()}
    for name, der in (("pkcs8", pkcs8), ("traditional", trad)):
        body = base64.b64encode(der)
        out[f"{name}-pem-body"] = body
        for i in range(0, len(body) - 64, 64):
            out[f"{name}-pem-line-{i // 64}"] = body[i : i + 64]
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        out.update({"rsa-d": _int_bytes(nums.d), "rsa-p": _int_bytes(nums.p), "rsa-q": _int_bytes(nums.q)})
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        out["ec-scalar"] = _int_bytes(key.private_numbers().private_value)
    return out


def scan(root: Path, keyset: dict[str, keys.PrivateKey]) -> list[str]:
    found = []
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for owner, key in keyset.items():
            for kind, needle in needles(key).items():
                if needle in data:
                    found.append(f"{path.relative_to(root)}: {kind} of {owner}")
    return found


def _key_of(manager: CertificateManager, sealed: SealedKey) -> keys.PrivateKey:
    der = manager.vault.open(sealed)
    try:
        return keys.from_der(der)
    finally:
        wipe(der)


def test_no_plaintext_private_key_on_disk(
    acm: Any,
    issue: Callable[..., str],
    clock: ManualClock,
    acm_control: ControlThread,
    manager: CertificateManager,
    tmp_path: Path,
) -> None:
    data_dir = acm_control.settings.data_dir
    keyset: dict[str, keys.PrivateKey] = {}

    def remember(arn: str, tag: str = "") -> None:
        rec = acm_control.call(lambda: manager._load(arn))
        keyset[f"{arn}{tag}"] = acm_control.call(lambda: _key_of(manager, rec.sealed))

    issued = [
        issue("rsa.example.com"),
        issue("p256.example.com", KeyAlgorithm="EC_prime256v1"),
        issue("p384.example.com", KeyAlgorithm="EC_secp384r1"),
        issue("export.example.com", Options={"Export": "ENABLED"}),
    ]
    for arn in issued:
        remember(arn)
    acm.export_certificate(CertificateArn=issued[-1], Passphrase=b"secret passphrase")
    # Renewal (of the exported one: RenewCertificate renews eligible certificates) replaces a key: the old one must
    # not be left behind either.
    acm.renew_certificate(CertificateArn=issued[-1])
    remember(issued[-1], "#renewed")
    # A load balancer's bundle is computed, never stored.
    acm_control.call(lambda: manager.add_in_use(issued[1], LB_ARN))
    acm_control.call(lambda: manager.seal_for(issued[1], LB_ARN))

    ca = trustme.CA()
    for i, name in enumerate(["imp-rsa.example.com", "imp-again.example.com"]):
        leaf = ca.issue_cert(name)
        pem = leaf.private_key_pem.bytes()
        imported = acm.import_certificate(Certificate=leaf.cert_chain_pems[0].bytes(), PrivateKey=pem)["CertificateArn"]
        k = serialization.load_pem_private_key(pem, None)
        assert isinstance(k, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        keyset[f"imported-{i}"] = k
        assert acm.describe_certificate(CertificateArn=imported)["Certificate"]["Type"] == "IMPORTED"
    # Re-import over the last one, with a key of another type.
    ec_ca_leaf = trustme.CA(key_type=trustme.KeyType.ECDSA).issue_cert("imp-ec.example.com")
    ec_pem = ec_ca_leaf.private_key_pem.bytes()
    acm.import_certificate(
        CertificateArn=imported, Certificate=ec_ca_leaf.cert_chain_pems[0].bytes(), PrivateKey=ec_pem
    )
    k = serialization.load_pem_private_key(ec_pem, None)
    assert isinstance(k, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    keyset["reimported"] = k

    for name in (ROOT_KEY, INTERMEDIATE_KEY):
        sealed = SealedKey.from_json(json.loads((ca_dir(data_dir) / name).read_text()))
        keyset[f"ca:{name}"] = acm_control.call(functools.partial(_key_of, manager, sealed))

    assert len({id(k) for k in keyset.values()}) == len(keyset) == 10
    # The scanner does find a key when one is there.
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "key.pem").write_bytes(
        keyset["imported-0"].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert scan(planted, {"imported-0": keyset["imported-0"]})

    assert (data_dir / "state.sqlite3").exists() and (data_dir / "audit.jsonl").exists()
    assert scan(data_dir, keyset) == []  # while running (WAL not yet checkpointed)
    acm_control.stop()
    assert scan(data_dir, keyset) == []  # after shutdown
