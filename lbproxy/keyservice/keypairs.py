"""Data key pairs: GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext.

A data key pair is made outside any KMS key (pyca/cryptography, ``asymmetric.new_key_pair``): its private key,
PKCS#8 DER in a ``bytearray``, is sealed under a symmetric encryption KMS key with the request's encryption
context (exactly as GenerateDataKey seals a data key, so Decrypt under the same context gives it back), and the
public key is returned as DER SubjectPublicKeyInfo. The KMS key must be a symmetric encryption key
(``InvalidKeyUsageException`` otherwise); the key pair's own spec has no usage rule (the model says so).
``SM2`` key pairs exist only in the China Regions (``UnsupportedOperationException``). The plaintext private
key is the caller's to wipe (WithoutPlaintext wipes it before returning).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import asymmetric, envelope
from lbproxy.keyservice.errors import UnsupportedOperationException, check_dry_run
from lbproxy.keyservice.keys import DataKeyPair
from lbproxy.keyservice.keyspecs import DATA_KEY_PAIR_SPECS
from lbproxy.keyservice.keystore import KeyStore


class DataKeyPairOperations(KeyStore):
    def generate_data_key_pair(
        self,
        principal: Principal,
        key_id: str,
        key_pair_spec: str,
        context: Mapping[str, str] | None = None,
        *,
        audit: dict[str, Any] | None = None,
        action: str = "GenerateDataKeyPair",
        dry_run: bool = False,
    ) -> DataKeyPair:
        key = self._resolve(key_id)
        self._authorize(principal, key, action, context, audit)
        self._usable(key)
        key.check_operation(action)
        if key_pair_spec not in DATA_KEY_PAIR_SPECS:
            raise UnsupportedOperationException(
                f"KeyPairSpec {key_pair_spec} is not available here: SM2 key pairs exist only in the China Regions."
            )
        check_dry_run(dry_run)
        private, public = asymmetric.new_key_pair(key_pair_spec)
        try:
            with self._material(key) as (material, version):
                blob = envelope.seal(material, key.key_id, version, private, context)
        except BaseException:
            envelope.wipe(private)
            raise
        return DataKeyPair(private, blob, public, key.arn, key_pair_spec)
