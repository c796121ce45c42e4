"""Cryptographic operations: Encrypt, GenerateDataKey(WithoutPlaintext), Decrypt, ReEncrypt.

Each one resolves the key, authorizes the caller with the encryption context (a grant's constraints
apply here), needs the key ``Enabled``, stops there on ``DryRun``, then unwraps the key's material for
the length of one ``envelope`` call. A ciphertext blob names its key and material version, so Decrypt
needs no KeyId and still decrypts what an older version sealed. Plaintexts are ``bytearray``s the caller
wipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import envelope, names
from lbproxy.keyservice.errors import (
    IncorrectKeyException,
    InvalidCiphertextException,
    NotFoundException,
    check_dry_run,
)
from lbproxy.keyservice.keys import SYMMETRIC_DEFAULT, DataKey, Decrypted
from lbproxy.keyservice.keystore import KeyStore


class CryptoOperations(KeyStore):
    def encrypt(
        self,
        principal: Principal,
        key_id: str,
        plaintext: bytes | bytearray,
        context: Mapping[str, str] | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> bytes:
        key = self._resolve(key_id)
        self._authorize(principal, key, "Encrypt", context, audit)
        self._usable(key)
        check_dry_run(dry_run)
        with self._material(key) as (material, version):
            return envelope.seal(material, key.key_id, version, plaintext, context)

    def generate_data_key(
        self,
        principal: Principal,
        key_id: str,
        context: Mapping[str, str] | None = None,
        *,
        number_of_bytes: int = 32,
        audit: dict[str, Any] | None = None,
        action: str = "GenerateDataKey",
        dry_run: bool = False,
    ) -> DataKey:
        key = self._resolve(key_id)
        self._authorize(principal, key, action, context, audit)
        self._usable(key)
        check_dry_run(dry_run)
        plaintext = envelope.random_bytes(number_of_bytes)
        with self._material(key) as (material, version):
            blob = envelope.seal(material, key.key_id, version, plaintext, context)
        return DataKey(plaintext, blob, key.arn)

    def decrypt(
        self,
        principal: Principal,
        ciphertext_blob: bytes | bytearray,
        context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
        action: str = "Decrypt",
    ) -> Decrypted:
        try:
            header = envelope.parse_header(ciphertext_blob)
        except envelope.InvalidBlob:
            raise InvalidCiphertextException("") from None
        if not names.is_key_id(header.key_id):
            raise InvalidCiphertextException("")
        try:
            key = self._resolve(header.key_id)
        except NotFoundException:
            raise InvalidCiphertextException("") from None
        if audit is not None:
            audit["resources"] = [{"ARN": key.arn, "type": "AWS::KMS::Key"}]
        if key_id is not None and self._resolve(key_id).key_id != key.key_id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this operation."
            )
        grant = self._authorize(principal, key, action, context, audit)
        self._usable(key)
        check_dry_run(dry_run)
        with self._material(key, header.version) as (material, _):
            try:
                plaintext = envelope.open_blob(material, ciphertext_blob, context)
            except envelope.InvalidBlob:
                raise InvalidCiphertextException("") from None
        return Decrypted(plaintext, key.arn, grant.grant_id if grant else None)

    def re_encrypt(
        self,
        principal: Principal,
        blob: bytes | bytearray,
        destination_key_id: str,
        source_context: Mapping[str, str] | None = None,
        destination_context: Mapping[str, str] | None = None,
        source_key_id: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        dest = self._resolve(destination_key_id)
        self._authorize(principal, dest, "ReEncryptTo", destination_context, audit)
        self._usable(dest)
        source = self.decrypt(principal, blob, source_context, source_key_id, audit, action="ReEncryptFrom")
        try:
            check_dry_run(dry_run)
            with self._material(dest) as (material, version):
                out = envelope.seal(material, dest.key_id, version, source.plaintext, destination_context)
        finally:
            envelope.wipe(source.plaintext)
        return {
            "CiphertextBlob": out,
            "SourceKeyId": source.key_arn,
            "KeyId": dest.arn,
            "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
        }
