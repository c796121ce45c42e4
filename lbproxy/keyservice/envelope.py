"""Envelope encryption, pure: AES-256-GCM with the encryption context as canonical AAD.

Canonical AAD: the context's pairs sorted by key (UTF-8 bytes), each key and value written as a
4-byte big-endian length and its UTF-8 bytes, after a 4-byte pair count. Length prefixes make it
unambiguous: ``{"a": "bc"}`` and ``{"ab": "c"}`` encode differently, and so do ``{}`` and no context.

Ciphertext blob (what KMS returns as ``CiphertextBlob``)::

    magic "LBK1" | key id (36 ASCII bytes, a UUID) | material version (4 bytes BE) |
    nonce (12 bytes) | AES-GCM ciphertext + 16-byte tag

The header names the key (Decrypt needs no KeyId) and is itself part of the AAD, so any change to
any byte fails authentication. Every failure is the same opaque ``InvalidBlob``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"LBK1"
KEY_ID_LEN = 36
NONCE_LEN = 12
TAG_LEN = 16
HEADER_LEN = len(MAGIC) + KEY_ID_LEN + 4
MIN_BLOB = HEADER_LEN + NONCE_LEN + TAG_LEN


class InvalidBlob(Exception):
    """The blob is malformed, tampered with, or was made under another key or context."""


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    items = sorted(((k.encode(), v.encode()) for k, v in (context or {}).items()), key=lambda kv: kv[0])
    out = bytearray(struct.pack(">I", len(items)))
    for k, v in items:
        out += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
    return bytes(out)


def random_bytes(n: int) -> bytearray:
    """``n`` random bytes straight into a wipeable buffer (no intermediate ``bytes``)."""
    buf = bytearray(n)
    with open("/dev/urandom", "rb", buffering=0) as f:
        got = f.readinto(buf)
    if got != n:
        raise OSError("short read from /dev/urandom")
    return buf


def wipe(buf: bytearray | memoryview | None) -> None:
    if buf is not None:
        buf[:] = bytes(len(buf))


@dataclass(frozen=True, slots=True)
class BlobHeader:
    key_id: str
    version: int


def parse_header(blob: bytes | bytearray) -> BlobHeader:
    if len(blob) < MIN_BLOB or bytes(blob[:4]) != MAGIC:
        raise InvalidBlob()
    try:
        key_id = bytes(blob[4 : 4 + KEY_ID_LEN]).decode("ascii")
    except UnicodeDecodeError:
        raise InvalidBlob() from None
    (version,) = struct.unpack(">I", blob[4 + KEY_ID_LEN : HEADER_LEN])
    return BlobHeader(key_id, version)


def seal(
    material: bytearray,
    key_id: str,
    version: int,
    plaintext: bytes | bytearray | memoryview,
    context: Mapping[str, str] | None,
) -> bytes:
    """Encrypt ``plaintext`` under a 32-byte master key ``material``; return the blob."""
    kid = key_id.encode("ascii")
    if len(kid) != KEY_ID_LEN:
        raise ValueError("key id must be a 36-character UUID")
    header = MAGIC + kid + struct.pack(">I", version)
    nonce = bytes(random_bytes(NONCE_LEN))
    ct = AESGCM(material).encrypt(
        nonce, bytes(plaintext) if isinstance(plaintext, memoryview) else plaintext, header + canonical_context(context)
    )
    return header + nonce + ct


def open_blob(material: bytearray, blob: bytes | bytearray, context: Mapping[str, str] | None) -> bytearray:
    """Decrypt a blob into a new ``bytearray`` (the caller wipes it)."""
    if len(blob) < MIN_BLOB:
        raise InvalidBlob()
    header = bytes(blob[:HEADER_LEN])
    nonce = bytes(blob[HEADER_LEN : HEADER_LEN + NONCE_LEN])
    ct = bytes(blob[HEADER_LEN + NONCE_LEN :])
    out = bytearray(len(ct) - TAG_LEN)
    try:
        AESGCM(material).decrypt_into(nonce, ct, header + canonical_context(context), out)
    except (InvalidTag, ValueError):
        wipe(out)
        raise InvalidBlob() from None
    return out


def wrap_material(root: bytearray, key_id: str, version: int, material: bytearray) -> bytes:
    """Master key material at rest: sealed under the root key, bound to its key id and version."""
    nonce = bytes(random_bytes(NONCE_LEN))
    aad = b"lbproxy-master-key|" + key_id.encode() + struct.pack(">I", version)
    return nonce + AESGCM(root).encrypt(nonce, material, aad)


def unwrap_material(root: bytearray, key_id: str, version: int, wrapped: bytes) -> bytearray:
    aad = b"lbproxy-master-key|" + key_id.encode() + struct.pack(">I", version)
    out = bytearray(len(wrapped) - NONCE_LEN - TAG_LEN)
    try:
        AESGCM(root).decrypt_into(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], aad, out)
    except (InvalidTag, ValueError):
        wipe(out)
        raise InvalidBlob() from None
    return out
