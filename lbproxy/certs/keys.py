"""Key pairs for certificates: ACM's key algorithms, generation, and serialization into wipeable buffers.

ACM names algorithms two ways: requests and ``ListCertificates`` use ``RSA_2048`` / ``EC_prime256v1``,
``DescribeCertificate`` answers ``RSA-2048`` / ``EC-prime256v1``. ``describe_name`` converts.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lbproxy.contract.sealed import scrub_bytes

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

DEFAULT_KEY_ALGORITHM = "RSA_2048"
#: Algorithms RequestCertificate accepts: "RSA_2048, EC_prime256v1, EC_secp384r1. Other listed algorithms are for
#: imported certificates only" (the model's KeyAlgorithm documentation; real ACM refuses the others, as observed).
REQUESTABLE = ("RSA_2048", "EC_prime256v1", "EC_secp384r1")
#: What ListCertificates lists when ``Includes.keyTypes`` is not given: "Default filtering returns only RSA_1024 and
#: RSA_2048 certificates that have at least one domain" (the ACM API reference, ``Filters.keyTypes``).
DEFAULT_LIST_KEY_TYPES = ("RSA_1024", "RSA_2048")
#: Algorithms ImportCertificate accepts.
IMPORTABLE = ("RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1")

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "EC_prime256v1": ec.SECP256R1,
    "EC_secp384r1": ec.SECP384R1,
    "EC_secp521r1": ec.SECP521R1,
}
_CURVE_NAMES = {"secp256r1": "EC_prime256v1", "secp384r1": "EC_secp384r1", "secp521r1": "EC_secp521r1"}


class UnsupportedKey(ValueError):
    pass


def generate(algorithm: str) -> PrivateKey:
    if algorithm.startswith("RSA_"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    curve = _CURVES.get(algorithm)
    if curve is None:
        raise UnsupportedKey(algorithm)
    return ec.generate_private_key(curve())


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    """``RSA_2048``-style name of a key, or ``UnsupportedKey``."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        name = f"RSA_{key.key_size}"
        if name in IMPORTABLE:
            return name
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        name = _CURVE_NAMES.get(key.curve.name, "")
        if name:
            return name
    raise UnsupportedKey(type(key).__name__)


def describe_name(algorithm: str) -> str:
    """``RSA_2048`` -> ``RSA-2048``, as DescribeCertificate shows it."""
    return algorithm.replace("_", "-", 1)


def to_der(key: PrivateKey) -> bytearray:
    """PKCS#8 DER in a ``bytearray``; the intermediate ``bytes`` from cryptography is scrubbed."""
    raw = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        return bytearray(raw)
    finally:
        scrub_bytes(raw)
        del raw


def from_der(der: bytearray) -> PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise UnsupportedKey(type(key).__name__)
    return key


def encrypted_pem(key: PrivateKey, passphrase: bytearray) -> str:
    """PKCS#8 ``ENCRYPTED PRIVATE KEY`` PEM under ``passphrase`` (PBES2, AES-256-CBC), as ExportCertificate."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(bytes(passphrase)),
    )
    return pem.decode("ascii")
