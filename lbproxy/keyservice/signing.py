"""Asymmetric signing keys: Sign, Verify, and GetPublicKey (of any asymmetric key).

Each call resolves the key, authorizes the caller (key policy or a grant for that operation), needs the key
``Enabled``, a ``SIGN_VERIFY`` key (``InvalidKeyUsageException`` otherwise), one of the key's signing algorithms
(``InvalidKeyUsageException``: "Algorithm X is incompatible with key spec Y."), and a message as the
``MessageType`` says (``DIGEST``: exactly the algorithm's digest length, else ``ValidationException``).

Sign unwraps the private key for one signature; Verify and GetPublicKey use the public key alone. A signature
that does not verify is ``KMSInvalidSignatureException``, as KMS answers (never ``SignatureValid: false``).
GetPublicKey of a symmetric or HMAC key is ``UnsupportedOperationException``: it has no public key.
"""

from __future__ import annotations

from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import asymmetric, keyspecs
from lbproxy.keyservice.errors import KMSInvalidSignatureException, UnsupportedOperationException, check_dry_run
from lbproxy.keyservice.keys import Key
from lbproxy.keyservice.keyspecs import ASYMMETRIC_ENCRYPTION, ASYMMETRIC_SIGNING
from lbproxy.keyservice.keystore import KeyStore


class SigningOperations(KeyStore):
    def _signing_key(
        self,
        principal: Principal,
        key_id: str,
        action: str,
        algorithm: str,
        message_type: str,
        message: bytes | bytearray,
        audit: dict[str, Any] | None,
        dry_run: bool,
    ) -> Key:
        key = self._resolve(key_id)
        self._authorize(principal, key, action, audit=audit)
        self._usable(key)
        key.check_operation(action)
        key.check_algorithm(algorithm)
        keyspecs.check_message(algorithm, message_type, message)
        check_dry_run(dry_run)
        return key

    def sign(
        self,
        principal: Principal,
        key_id: str,
        message: bytes | bytearray,
        algorithm: str,
        message_type: str = "RAW",
        *,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        key = self._signing_key(principal, key_id, "Sign", algorithm, message_type, message, audit, dry_run)
        with self._material(key) as (der, _):
            signature = asymmetric.sign(der, algorithm, message, message_type)
        return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": algorithm}

    def verify(
        self,
        principal: Principal,
        key_id: str,
        message: bytes | bytearray,
        signature: bytes | bytearray,
        algorithm: str,
        message_type: str = "RAW",
        *,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        key = self._signing_key(principal, key_id, "Verify", algorithm, message_type, message, audit, dry_run)
        if not asymmetric.verify(self._public_key(key), algorithm, message, message_type, bytes(signature)):
            raise KMSInvalidSignatureException("")
        return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}

    def get_public_key(self, principal: Principal, key_id: str, audit: dict[str, Any] | None = None) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "GetPublicKey", audit=audit)
        self._usable(key)
        if key.kind not in (ASYMMETRIC_ENCRYPTION, ASYMMETRIC_SIGNING):
            raise UnsupportedOperationException(f"{key.arn} is a {key.kind} KMS key: it has no public key.")
        return {
            "KeyId": key.arn,
            "PublicKey": self._public_key(key),
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
            **keyspecs.algorithm_metadata(key.key_spec, key.key_usage),
        }
