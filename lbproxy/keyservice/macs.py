"""HMAC keys: GenerateMac and VerifyMac.

Each call resolves the key, authorizes the caller (key policy or a grant for that operation), needs the key
``Enabled``, an HMAC key (``InvalidKeyUsageException`` otherwise) and the key spec's own algorithm (``HMAC_256``
takes ``HMAC_SHA_256`` only: "Algorithm X is incompatible with key spec Y."). The key material (the spec's
length in random bytes) is unwrapped for one MAC and wiped. A MAC that does not match is
``KMSInvalidMacException`` (compared in constant time), as KMS answers (never ``MacValid: false``).
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hmac

from lbproxy.core.principals import Principal
from lbproxy.keyservice.asymmetric import hash_of
from lbproxy.keyservice.errors import KMSInvalidMacException, check_dry_run
from lbproxy.keyservice.keys import Key
from lbproxy.keyservice.keystore import KeyStore


def compute_mac(material: bytearray, algorithm: str, message: bytes | bytearray) -> bytes:
    h = hmac.HMAC(material, hash_of(algorithm))
    h.update(bytes(message))
    return h.finalize()


def mac_matches(material: bytearray, algorithm: str, message: bytes | bytearray, tag: bytes | bytearray) -> bool:
    """Constant-time comparison (``HMAC.verify``)."""
    h = hmac.HMAC(material, hash_of(algorithm))
    h.update(bytes(message))
    try:
        h.verify(bytes(tag))
    except InvalidSignature:
        return False
    return True


class MacOperations(KeyStore):
    def _mac_key(
        self,
        principal: Principal,
        key_id: str,
        action: str,
        algorithm: str,
        audit: dict[str, Any] | None,
        dry_run: bool,
    ) -> Key:
        key = self._resolve(key_id)
        self._authorize(principal, key, action, audit=audit)
        self._usable(key)
        key.check_operation(action)
        key.check_algorithm(algorithm)
        check_dry_run(dry_run)
        return key

    def generate_mac(
        self,
        principal: Principal,
        key_id: str,
        message: bytes | bytearray,
        algorithm: str,
        *,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        key = self._mac_key(principal, key_id, "GenerateMac", algorithm, audit, dry_run)
        with self._material(key) as (material, _):
            tag = compute_mac(material, algorithm, message)
        return {"Mac": tag, "MacAlgorithm": algorithm, "KeyId": key.arn}

    def verify_mac(
        self,
        principal: Principal,
        key_id: str,
        message: bytes | bytearray,
        mac: bytes | bytearray,
        algorithm: str,
        *,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        key = self._mac_key(principal, key_id, "VerifyMac", algorithm, audit, dry_run)
        with self._material(key) as (material, _):
            ok = mac_matches(material, algorithm, message, mac)
        if not ok:
            raise KMSInvalidMacException("")
        return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": algorithm}
