"""Sealed private keys: the only form in which a certificate's key is ever stored or shipped.

A private key is serialized as PKCS#8 DER into a ``bytearray`` and encrypted with AES-256-GCM under a
one-time *data key*. The data key comes from the key service (``GenerateDataKey``), which also returns
it encrypted under a master key; only that encrypted copy is kept. What is stored is a ``SealedKey``:

- ``ciphertext``          AES-256-GCM(PKCS#8 DER) followed by the 16-byte tag
- ``nonce``               the 96-bit GCM nonce
- ``encrypted_data_key``  the key service's ciphertext blob of the data key
- ``key_arn``             the master key that wraps the data key
- ``context``             the encryption context that unwraps it (``{"aws:acm:arn": <cert>}``)
- ``label``               what the key belongs to (a certificate ARN, ``ca:root``...), bound into the
                          GCM associated data so a ciphertext cannot be moved to another certificate

There is no plaintext key field, ever. Opening takes the plaintext data key (from a KMS ``Decrypt``
the caller made) and decrypts into a fresh ``bytearray`` with ``AESGCM.decrypt_into``; the caller
zeroes both buffers when done (``wipe``).

A *bundle* (``bundle_to_json`` / ``open_sealed_key``) is the JSON shape a data plane receives for one
certificate/load-balancer association: the certificate and chain, and the sealed key whose data key
was re-wrapped under the association's two-key context. This module imports nothing from the
control plane, so the data plane can import it.
"""

from __future__ import annotations

import base64
import ctypes
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The only sealing algorithm; recorded in every bundle so a reader can refuse what it does not know.
ALGORITHM = "AES_256_GCM"
#: What the plaintext inside ``ciphertext`` is.
KEY_FORMAT = "PKCS8_DER"
BUNDLE_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
DATA_KEY_SIZE = 32
_AAD_PREFIX = b"lbproxy:sealed-key:v1\x00"


class SealedKeyError(ValueError):
    """A sealed key or bundle that cannot be opened (malformed, wrong data key, tampered).

    One opaque error for every decryption failure, as ``cryptography.fernet`` does."""


@dataclass(frozen=True, slots=True)
class SealedKey:
    ciphertext: bytes
    nonce: bytes
    encrypted_data_key: bytes
    key_arn: str
    label: str
    context: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "Algorithm": ALGORITHM,
            "KeyFormat": KEY_FORMAT,
            "Label": self.label,
            "KeyId": self.key_arn,
            "EncryptionContext": dict(self.context),
            "EncryptedDataKey": _b64(self.encrypted_data_key),
            "KeyCiphertext": _b64(self.ciphertext),
            "Nonce": _b64(self.nonce),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SealedKey:
        try:
            if doc.get("Algorithm", ALGORITHM) != ALGORITHM or doc.get("KeyFormat", KEY_FORMAT) != KEY_FORMAT:
                raise SealedKeyError("unsupported sealed key algorithm or format")
            return cls(
                ciphertext=base64.b64decode(doc["KeyCiphertext"], validate=True),
                nonce=base64.b64decode(doc["Nonce"], validate=True),
                encrypted_data_key=base64.b64decode(doc["EncryptedDataKey"], validate=True),
                key_arn=str(doc["KeyId"]),
                label=str(doc["Label"]),
                context={str(k): str(v) for k, v in dict(doc.get("EncryptionContext") or {}).items()},
            )
        except SealedKeyError:
            raise
        except (KeyError, TypeError, ValueError):
            raise SealedKeyError("malformed sealed key") from None

    def rewrapped(self, encrypted_data_key: bytes, context: Mapping[str, str]) -> SealedKey:
        """The same ciphertext, with its data key wrapped again under another context."""
        return SealedKey(
            ciphertext=self.ciphertext,
            nonce=self.nonce,
            encrypted_data_key=encrypted_data_key,
            key_arn=self.key_arn,
            label=self.label,
            context=dict(context),
        )


def associated_data(label: str) -> bytes:
    return _AAD_PREFIX + label.encode("utf-8")


def seal(
    plaintext: bytearray,
    data_key: bytearray,
    *,
    encrypted_data_key: bytes,
    key_arn: str,
    label: str,
    context: Mapping[str, str],
) -> SealedKey:
    """Encrypt ``plaintext`` under ``data_key``. Neither buffer is zeroed here: the caller owns them."""
    if len(data_key) != DATA_KEY_SIZE:
        raise SealedKeyError("data key must be 32 bytes")
    nonce = os.urandom(NONCE_SIZE)
    out = bytearray(len(plaintext) + TAG_SIZE)
    AESGCM(data_key).encrypt_into(nonce, plaintext, associated_data(label), out)
    return SealedKey(
        ciphertext=bytes(out),
        nonce=nonce,
        encrypted_data_key=encrypted_data_key,
        key_arn=key_arn,
        label=label,
        context=dict(context),
    )


def open_sealed(sealed: SealedKey, data_key: bytearray) -> bytearray:
    """Decrypt a ``SealedKey`` into a new ``bytearray`` (PKCS#8 DER). The caller wipes it."""
    if len(data_key) != DATA_KEY_SIZE or len(sealed.nonce) != NONCE_SIZE or len(sealed.ciphertext) < TAG_SIZE:
        raise SealedKeyError("sealed key cannot be opened")
    out = bytearray(len(sealed.ciphertext) - TAG_SIZE)
    try:
        AESGCM(data_key).decrypt_into(sealed.nonce, sealed.ciphertext, associated_data(sealed.label), out)
    except Exception:
        wipe(out)
        raise SealedKeyError("sealed key cannot be opened") from None
    return out


# -- bundles: what a data plane gets for one certificate on one load balancer ------------------------


def bundle_to_json(
    sealed: SealedKey,
    *,
    certificate_arn: str,
    certificate_pem: str,
    chain_pem: str,
    key_algorithm: str,
    serial: str,
    not_after: float,
) -> dict[str, Any]:
    doc = sealed.to_json()
    doc.update(
        {
            "Version": BUNDLE_VERSION,
            "CertificateArn": certificate_arn,
            "Certificate": certificate_pem,
            "CertificateChain": chain_pem,
            "KeyAlgorithm": key_algorithm,
            "Serial": serial,
            "NotAfter": not_after,
        }
    )
    return doc


def open_sealed_key(bundle: Mapping[str, Any], plaintext_data_key: bytearray) -> bytearray:
    """Open a bundle's private key (PKCS#8 DER) into a new ``bytearray``.

    ``plaintext_data_key`` is what KMS ``Decrypt`` returned for ``bundle["EncryptedDataKey"]`` under
    ``bundle["EncryptionContext"]``. Neither it nor the result is kept here; the caller wipes both.
    The ciphertext is bound to ``bundle["CertificateArn"]``: a bundle whose key was swapped for another
    certificate's fails to open.
    """
    if bundle.get("Version", BUNDLE_VERSION) != BUNDLE_VERSION:
        raise SealedKeyError("unsupported bundle version")
    sealed = SealedKey.from_json(bundle)
    if "CertificateArn" in bundle and sealed.label != bundle["CertificateArn"]:
        raise SealedKeyError("sealed key does not belong to this certificate")
    return open_sealed(sealed, plaintext_data_key)


# -- buffers --------------------------------------------------------------------------------------

_PEM_KEY_BEGIN = b"-----BEGIN PRIVATE KEY-----\n"
_PEM_KEY_END = b"-----END PRIVATE KEY-----\n"
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def pem_private_key(der: bytearray) -> bytearray:
    """PKCS#8 DER -> PEM, written straight into a ``bytearray`` (for ``load_cert_chain`` via memfd).

    Pure Python on purpose: ``base64``/``binascii`` would leave ``bytes`` copies of the key behind.
    Small ints are interned, so nothing here but the returned buffer holds key material.
    """
    n = len(der)
    body_len = 4 * ((n + 2) // 3)
    lines = (body_len + 63) // 64
    out = bytearray(len(_PEM_KEY_BEGIN) + body_len + lines + len(_PEM_KEY_END))
    out[: len(_PEM_KEY_BEGIN)] = _PEM_KEY_BEGIN
    pos = len(_PEM_KEY_BEGIN)
    col = 0
    alphabet = _B64_ALPHABET
    for i in range(0, n, 3):
        b0 = der[i]
        b1 = der[i + 1] if i + 1 < n else 0
        b2 = der[i + 2] if i + 2 < n else 0
        quad = (
            alphabet[b0 >> 2],
            alphabet[((b0 & 0x03) << 4) | (b1 >> 4)],
            alphabet[((b1 & 0x0F) << 2) | (b2 >> 6)] if i + 1 < n else 0x3D,
            alphabet[b2 & 0x3F] if i + 2 < n else 0x3D,
        )
        for c in quad:
            out[pos] = c
            pos += 1
            col += 1
            if col == 64:
                out[pos] = 0x0A
                pos += 1
                col = 0
    if col:
        out[pos] = 0x0A
        pos += 1
    out[pos : pos + len(_PEM_KEY_END)] = _PEM_KEY_END
    return out


def wipe(buf: bytearray | memoryview | None) -> None:
    """Zero a mutable buffer in place (its length is unchanged)."""
    if buf is None:
        return
    n = len(buf)
    if n:
        buf[:] = bytes(n)


def scrub_bytes(data: bytes) -> None:
    """Best effort: zero the storage of a ``bytes`` object that the caller alone just received.

    ``cryptography`` returns serialized keys as ``bytes``; copying them into a ``bytearray`` would
    still leave this copy in freed memory. Only call this on a fresh object of ours (never a literal,
    never one shared or hashed, never length 0 or 1: CPython interns those).
    """
    n = len(data)
    if n < 2 or type(data) is not bytes:
        return
    offset = sys.getsizeof(b"") - 1  # header size; the payload follows it
    ctypes.memset(id(data) + offset, 0, n)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
