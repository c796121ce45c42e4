"""Cryptographic operations: Encrypt, GenerateDataKey(WithoutPlaintext), Decrypt, ReEncrypt, GenerateRandom.

Each one resolves the key, authorizes the caller with the encryption context (a grant's constraints
apply here), needs the key ``Enabled`` and of a kind that supports the operation (``keyspecs``:
``InvalidKeyUsageException`` otherwise), checks the algorithm, stops there on ``DryRun``, then unwraps the
key's material for the length of one call.

- A symmetric key seals with ``envelope`` (``SYMMETRIC_DEFAULT``): the ciphertext blob names its key and
  material version, so Decrypt needs no KeyId and still decrypts what an older version sealed.
- An asymmetric ``ENCRYPT_DECRYPT`` key (RSA) uses RSAES-OAEP (``RSAES_OAEP_SHA_1``/``_SHA_256``, which the
  request must name): Encrypt needs only the public key; the ciphertext is the bare RSA output, so Decrypt
  needs the KeyId and the algorithm; there is no encryption context (``ValidationException``), and the
  plaintext has a maximum length (``keyspecs.max_plaintext``).

Plaintexts are ``bytearray``s the caller wipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import asymmetric, envelope, keyspecs, names
from lbproxy.keyservice.errors import (
    CustomKeyStoreNotFoundException,
    IncorrectKeyException,
    InvalidCiphertextException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
    check_dry_run,
)
from lbproxy.keyservice.keys import SYMMETRIC_DEFAULT, DataKey, Decrypted, Key
from lbproxy.keyservice.keyspecs import SYMMETRIC
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
        algorithm: str = SYMMETRIC_DEFAULT,
    ) -> bytes:
        key = self._resolve(key_id)
        self._authorize(principal, key, "Encrypt", context, audit)
        self._usable(key)
        self._check_encryption(key, "Encrypt", algorithm, context, len(plaintext))
        check_dry_run(dry_run)
        return self._seal(key, plaintext, context, algorithm)

    def _check_encryption(
        self, key: Key, action: str, algorithm: str, context: Mapping[str, str] | None, size: int | None = None
    ) -> None:
        """What Encrypt and Decrypt (and ReEncrypt's two halves) ask of the key, its algorithm and context."""
        key.check_operation(action)
        key.check_algorithm(algorithm)
        if key.kind == SYMMETRIC:
            return
        keyspecs.check_no_context(context)
        if size is not None and size > (most := keyspecs.max_plaintext(key.key_spec, algorithm)):
            raise ValidationException(
                f"Plaintext of {size} bytes is too long for {key.key_spec} with {algorithm}: at most {most} bytes."
            )

    def _seal(self, key: Key, plaintext: bytes | bytearray, context: Mapping[str, str] | None, algorithm: str) -> bytes:
        if key.kind != SYMMETRIC:
            return asymmetric.rsa_encrypt(self._public_key(key), algorithm, plaintext)
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
        key.check_operation(action)
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
        algorithm: str = SYMMETRIC_DEFAULT,
    ) -> Decrypted:
        named = self._resolve(key_id) if key_id is not None else None
        if named is not None and named.kind != SYMMETRIC:
            return self._decrypt_asymmetric(
                principal, named, ciphertext_blob, context, audit, dry_run, action, algorithm
            )
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
        if key.kind != SYMMETRIC:  # only a symmetric key makes these blobs: this one was made up
            raise InvalidCiphertextException("")
        if audit is not None:
            audit["resources"] = [{"ARN": key.arn, "type": "AWS::KMS::Key"}]
        if named is not None and named.key_id != key.key_id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this operation."
            )
        grant = self._authorize(principal, key, action, context, audit)
        self._usable(key)
        self._check_encryption(key, action, algorithm, context)
        check_dry_run(dry_run)
        with self._material(key, header.version) as (material, _):
            try:
                plaintext = envelope.open_blob(material, ciphertext_blob, context)
            except envelope.InvalidBlob:
                raise InvalidCiphertextException("") from None
        return Decrypted(plaintext, key.arn, grant.grant_id if grant else None)

    def _decrypt_asymmetric(
        self,
        principal: Principal,
        key: Key,
        blob: bytes | bytearray,
        context: Mapping[str, str] | None,
        audit: dict[str, Any] | None,
        dry_run: bool,
        action: str,
        algorithm: str,
    ) -> Decrypted:
        """Decrypt under an RSA ``ENCRYPT_DECRYPT`` key (named by KeyId: the ciphertext does not say)."""
        if audit is not None:
            audit["resources"] = [{"ARN": key.arn, "type": "AWS::KMS::Key"}]
        grant = self._authorize(principal, key, action, context, audit)
        self._usable(key)
        self._check_encryption(key, action, algorithm, context)
        check_dry_run(dry_run)
        with self._material(key) as (der, _):
            try:
                plaintext = asymmetric.rsa_decrypt(der, algorithm, blob)
            except asymmetric.InvalidCiphertext:
                raise InvalidCiphertextException("") from None
        return Decrypted(plaintext, key.arn, grant.grant_id if grant else None, algorithm)

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
        source_algorithm: str = SYMMETRIC_DEFAULT,
        destination_algorithm: str = SYMMETRIC_DEFAULT,
    ) -> dict[str, Any]:
        dest = self._resolve(destination_key_id)
        self._authorize(principal, dest, "ReEncryptTo", destination_context, audit)
        self._usable(dest)
        self._check_encryption(dest, "ReEncryptTo", destination_algorithm, destination_context)
        source = self.decrypt(
            principal,
            blob,
            source_context,
            source_key_id,
            audit,
            action="ReEncryptFrom",
            algorithm=source_algorithm,
        )
        try:
            self._check_encryption(dest, "ReEncryptTo", destination_algorithm, None, len(source.plaintext))
            check_dry_run(dry_run)
            out = self._seal(dest, source.plaintext, destination_context, destination_algorithm)
        finally:
            envelope.wipe(source.plaintext)
        return {
            "CiphertextBlob": out,
            "SourceKeyId": source.key_arn,
            "KeyId": dest.arn,
            "SourceEncryptionAlgorithm": source.algorithm,
            "DestinationEncryptionAlgorithm": destination_algorithm,
        }

    def generate_random(
        self, principal: Principal, number_of_bytes: int | None, custom_key_store_id: str | None = None
    ) -> bytearray:
        """GenerateRandom: an IAM permission (no key); the bytes are the caller's to wipe."""
        self._require_iam(principal, "GenerateRandom")
        if custom_key_store_id is not None:
            raise CustomKeyStoreNotFoundException(
                f"Custom key store {custom_key_store_id} does not exist: lbproxy has no custom key stores."
            )
        if number_of_bytes is None:
            raise ValidationException(
                "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: "
                "Member must not be null"
            )
        return envelope.random_bytes(number_of_bytes)


def refuse_recipient(recipient: Mapping[str, Any] | None) -> None:
    """``Recipient`` (Nitro Enclaves attestation) is not emulated."""
    if recipient:
        raise UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not supported.")
