"""What ACM shows about an X.509 certificate: serial, subject, issuer, algorithms, usages, names."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

_SIGNATURE_NAMES = {
    "1.2.840.113549.1.1.4": "MD5WITHRSA",
    "1.2.840.113549.1.1.5": "SHA1WITHRSA",
    "1.2.840.113549.1.1.14": "SHA224WITHRSA",
    "1.2.840.113549.1.1.11": "SHA256WITHRSA",
    "1.2.840.113549.1.1.12": "SHA384WITHRSA",
    "1.2.840.113549.1.1.13": "SHA512WITHRSA",
    "1.2.840.113549.1.1.10": "SHA256WITHRSASSAPSS",
    "1.2.840.10045.4.1": "SHA1WITHECDSA",
    "1.2.840.10045.4.3.2": "SHA256WITHECDSA",
    "1.2.840.10045.4.3.3": "SHA384WITHECDSA",
    "1.2.840.10045.4.3.4": "SHA512WITHECDSA",
}
_EKU_NAMES = {
    "1.3.6.1.5.5.7.3.1": "TLS_WEB_SERVER_AUTHENTICATION",
    "1.3.6.1.5.5.7.3.2": "TLS_WEB_CLIENT_AUTHENTICATION",
    "1.3.6.1.5.5.7.3.3": "CODE_SIGNING",
    "1.3.6.1.5.5.7.3.4": "EMAIL_PROTECTION",
    "1.3.6.1.5.5.7.3.8": "TIME_STAMPING",
    "1.3.6.1.5.5.7.3.9": "OCSP_SIGNING",
    "1.3.6.1.5.5.7.3.5": "IPSEC_END_SYSTEM",
    "1.3.6.1.5.5.7.3.6": "IPSEC_TUNNEL",
    "1.3.6.1.5.5.7.3.7": "IPSEC_USER",
    "2.5.29.37.0": "ANY",
}
_KEY_USAGES = (
    ("digital_signature", "DIGITAL_SIGNATURE"),
    ("content_commitment", "NON_REPUDIATION"),
    ("key_encipherment", "KEY_ENCIPHERMENT"),
    ("data_encipherment", "DATA_ENCIPHERMENT"),
    ("key_agreement", "KEY_AGREEMENT"),
    ("key_cert_sign", "CERTIFICATE_SIGNING"),
    ("crl_sign", "CRL_SIGNING"),
)
_SHORT = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "E",
}


@dataclass(frozen=True, slots=True)
class CertInfo:
    serial: str
    subject: str
    issuer: str
    common_name: str
    dns_names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    signature_algorithm: str
    key_usages: tuple[str, ...]
    extended_key_usages: tuple[tuple[str, str], ...]  # (name, OID)


def serial_text(serial: int) -> str:
    """``0d:6a:...``: the serial's bytes in hex, colon-separated, as ACM shows it."""
    raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
    return ":".join(f"{b:02x}" for b in raw)


def _name_text(name: x509.Name) -> str:
    parts = []
    for attr in name:
        label = _SHORT.get(attr.oid, attr.oid.dotted_string)
        parts.append(f"{label}={attr.value!s}")
    return ",".join(parts)


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else ""


def info(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        usages = tuple(name for attr, name in _KEY_USAGES if getattr(ku, attr))
    except x509.ExtensionNotFound:
        usages = ()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ekus = tuple((_EKU_NAMES.get(o.dotted_string, "CUSTOM"), o.dotted_string) for o in eku)
    except x509.ExtensionNotFound:
        ekus = ()
    issuer = _first(cert.issuer, NameOID.ORGANIZATION_NAME) or _first(cert.issuer, NameOID.COMMON_NAME)
    return CertInfo(
        serial=serial_text(cert.serial_number),
        subject=_name_text(cert.subject),
        issuer=issuer,
        common_name=_first(cert.subject, NameOID.COMMON_NAME),
        dns_names=sans,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        signature_algorithm=_SIGNATURE_NAMES.get(cert.signature_algorithm_oid.dotted_string, "UNKNOWN"),
        key_usages=usages,
        extended_key_usages=ekus,
    )


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM blob (``ValueError`` if there is none or one is malformed)."""
    return x509.load_pem_x509_certificates(data)
