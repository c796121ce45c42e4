"""What ImportCertificate accepts, pure: one PEM certificate, an optional PEM chain, and an unencrypted
PEM private key (RSA or EC, ``keys.IMPORTABLE``) that matches the certificate, which must be valid now.

``read_import`` checks all of it in ACM's order and wording and returns the key object apart from the
rest, so the caller can seal it and drop it at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lbproxy.certs import certinfo, keys
from lbproxy.certs.errors import ValidationException


@dataclass(frozen=True, slots=True)
class Import:
    """An import, checked: the certificate, its chain, and what ACM records of them."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    info: certinfo.CertInfo
    key_algorithm: str
    domain_name: str
    names: list[str]


def read_import(
    certificate: bytes | bytearray,
    private_key: bytes | bytearray,
    certificate_chain: bytes | bytearray | None,
    now: dt.datetime,
) -> tuple[keys.PrivateKey, Import]:
    """The private key and the checked import; ``ValidationException`` in ACM's words otherwise.
    ``private_key`` is not wiped here (the caller owns it)."""
    try:
        certs = certinfo.load_pem_chain(bytes(certificate))
    except ValueError:
        raise ValidationException(
            "Unable to parse certificate. Please ensure the certificate is in PEM format."
        ) from None
    if len(certs) != 1:
        raise ValidationException(
            "The certificate field contains more than one certificate. You can specify only one certificate "
            "in this field."
        )
    cert = certs[0]
    chain: list[x509.Certificate] = []
    if certificate_chain:
        try:
            chain = certinfo.load_pem_chain(bytes(certificate_chain))
        except ValueError:
            raise ValidationException(
                "Unable to parse certificate chain. Please ensure the chain is in PEM format."
            ) from None
    try:
        key = serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError):
        raise ValidationException("The private key is not supported.") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValidationException("The private key is not supported.")
    try:
        algorithm = keys.algorithm_of(key)
    except keys.UnsupportedKey:
        raise ValidationException("The private key length is not supported.") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, pub) != cert.public_key().public_bytes(
        serialization.Encoding.DER, pub
    ):
        raise ValidationException("The private key does not match the public key in the certificate.")
    if cert.not_valid_after_utc < now:
        raise ValidationException("The certificate has expired, is not valid.")
    if cert.not_valid_before_utc > now:
        raise ValidationException("The certificate is not in effect yet, is not valid.")
    ci = certinfo.info(cert)
    names = list(dict.fromkeys([n.lower() for n in ci.dns_names]))
    domain = (ci.common_name or (names[0] if names else "")).lower()
    if domain and domain not in names:
        names.insert(0, domain)
    return key, Import(cert, chain, ci, algorithm, domain, names)
