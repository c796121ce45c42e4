"""Asymmetric cryptography, pure, with pyca/cryptography: key pairs made into wipeable buffers, and what KMS does
with them.

- A private key leaves generation as PKCS#8 DER in a ``bytearray`` (the ``bytes`` cryptography serializes to is
  scrubbed); the key service wraps it under the root key like any material and wipes the buffer. It comes back
  for one operation (``private_key``: loaded into an OpenSSL object, the buffer is the caller's to wipe).
- Public keys are DER ``SubjectPublicKeyInfo`` (GetPublicKey's ``PublicKey``); Verify and asymmetric Encrypt
  need nothing else.
- Signatures as KMS makes them: RSASSA-PKCS1-v1_5 and RSASSA-PSS (MGF1 with the same hash, salt as long as the
  hash), ECDSA as DER ``Ecdsa-Sig-Value``; ``DIGEST`` messages are signed as the digest (``Prehashed``).
- RSAES-OAEP with SHA-1 or SHA-256 (and MGF1 with the same hash).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from lbproxy.contract.sealed import scrub_bytes
from lbproxy.keyservice.keyspecs import SPECS

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "secp256k1": ec.SECP256K1,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_224": hashes.SHA224,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}


class InvalidCiphertext(ValueError):
    """RSAES-OAEP decryption failed (wrong key, algorithm or ciphertext): all the same to the caller."""


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an algorithm name ends with: ``RSASSA_PSS_SHA_256`` -> SHA-256, ``HMAC_SHA_224`` -> SHA-224."""
    return _HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


# -- key material ------------------------------------------------------------------------------------------


def generate_private_key(key_spec: str) -> PrivateKey:
    """A new private key for an RSA or ECC key spec (or ``ECC_NIST_EDWARDS25519``, for data key pairs)."""
    if key_spec == "ECC_NIST_EDWARDS25519":
        return ed25519.Ed25519PrivateKey.generate()
    spec = SPECS[key_spec]
    if spec.family == "rsa":
        assert isinstance(spec.size, int)
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    assert isinstance(spec.size, str)
    return ec.generate_private_key(_CURVES[spec.size]())


def private_der(key: PrivateKey) -> bytearray:
    """PKCS#8 DER in a ``bytearray``; the intermediate ``bytes`` from cryptography is scrubbed."""
    raw = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        return bytearray(raw)
    finally:
        scrub_bytes(raw)
        del raw


def public_der(key: PrivateKey) -> bytes:
    """DER ``SubjectPublicKeyInfo``."""
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_key_pair(key_spec: str) -> tuple[bytearray, bytes]:
    """A new key pair: (PKCS#8 DER private key, the caller wipes it; DER public key)."""
    key = generate_private_key(key_spec)
    try:
        return private_der(key), public_der(key)
    finally:
        del key


def private_key(der: bytearray) -> PrivateKey:
    """A stored private key, loaded for one operation (the caller wipes ``der``)."""
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unexpected private key type {type(key).__name__}")
    return key


# -- signatures --------------------------------------------------------------------------------------------


def _rsa_padding(algorithm: str, hash_: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(hash_), salt_length=hash_.digest_size)
    return padding.PKCS1v15()


def sign(der: bytearray, algorithm: str, message: bytes | bytearray, message_type: str) -> bytes:
    """Sign ``message`` (or, with ``DIGEST``, the digest it is) with the private key in ``der``."""
    key = private_key(der)
    hash_ = hash_of(algorithm)
    chosen: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(hash_) if message_type == "DIGEST" else hash_
    data = bytes(message)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _rsa_padding(algorithm, hash_), chosen)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(chosen))
    raise ValueError("Ed25519 keys do not sign through KMS here")


def verify(public: bytes, algorithm: str, message: bytes | bytearray, message_type: str, signature: bytes) -> bool:
    """Whether ``signature`` is the public key's signature of ``message`` under ``algorithm``."""
    key = serialization.load_der_public_key(public)
    hash_ = hash_of(algorithm)
    chosen: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(hash_) if message_type == "DIGEST" else hash_
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(bytes(signature), bytes(message), _rsa_padding(algorithm, hash_), chosen)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(bytes(signature), bytes(message), ec.ECDSA(chosen))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# -- RSAES-OAEP --------------------------------------------------------------------------------------------


def _oaep(algorithm: str) -> padding.OAEP:
    hash_ = hash_of(algorithm)
    return padding.OAEP(mgf=padding.MGF1(hash_), algorithm=hash_, label=None)


def rsa_encrypt(public: bytes, algorithm: str, plaintext: bytes | bytearray) -> bytes:
    key = serialization.load_der_public_key(public)
    assert isinstance(key, rsa.RSAPublicKey)
    return key.encrypt(bytes(plaintext), _oaep(algorithm))


def rsa_decrypt(der: bytearray, algorithm: str, ciphertext: bytes | bytearray) -> bytearray:
    """The plaintext in a new ``bytearray`` (the caller wipes it); any failure is ``InvalidCiphertext``."""
    key = private_key(der)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidCiphertext()
    try:
        raw = key.decrypt(bytes(ciphertext), _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertext() from None
    try:
        return bytearray(raw)
    finally:
        scrub_bytes(raw)
        del raw
