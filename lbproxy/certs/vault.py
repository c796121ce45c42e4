"""``KeyVault``: seals and opens private keys through the key service, as the ACM service principal.

Every seal asks KMS for a fresh data key (``GenerateDataKey`` under ``alias/aws/acm``), encrypts the
PKCS#8 DER with it and zeroes the plaintext data key at once. Opening asks KMS to ``Decrypt`` the data
key under the record's encryption context. ``rewrap`` is ACM's ReEncrypt for an association: decrypt
the data key under ``{"aws:acm:arn": cert}`` and encrypt the same data key again under
``{"aws:acm:arn": cert, "aws:lightsail:arn": lb}``, so a load balancer's grant can unwrap it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from lbproxy.certs import keys
from lbproxy.contract.sealed import SealedKey, open_sealed, seal, wipe
from lbproxy.contract.vocabulary import ACM_KEY_ALIAS
from lbproxy.core.principals import ACM_PRINCIPAL, Principal


class _DataKey(Protocol):
    plaintext: bytearray
    ciphertext_blob: bytes
    key_arn: str


class _Decrypted(Protocol):
    plaintext: bytearray
    key_arn: str


class KeyServiceLike(Protocol):
    """The part of ``lbproxy.keyservice.service.KeyService`` the certificate manager uses."""

    def generate_data_key(
        self, principal: Principal, key_id: str, context: dict[str, str], *, number_of_bytes: int = 32
    ) -> _DataKey: ...

    def decrypt(
        self,
        principal: Principal,
        ciphertext_blob: bytes | bytearray,
        context: dict[str, str],
        key_id: str | None = None,
    ) -> _Decrypted: ...

    def encrypt(
        self, principal: Principal, key_id: str, plaintext: bytes | bytearray, context: dict[str, str]
    ) -> bytes: ...

    def create_grant(
        self,
        principal: Principal,
        key_id: str,
        grantee: str,
        operations: list[str],
        *,
        retiring_principal: str | None = None,
        constraints: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> tuple[str, str]: ...

    def retire_grant(
        self,
        principal: Principal,
        *,
        key_id: str | None = None,
        grant_id: str | None = None,
        grant_token: str | None = None,
    ) -> None: ...

    def key_arn(self, key_id_or_alias: str) -> str: ...


class KeyVault:
    def __init__(self, kms: KeyServiceLike, key_id: str = ACM_KEY_ALIAS, principal: Principal = ACM_PRINCIPAL) -> None:
        self.kms = kms
        self.key_id = key_id
        self.principal = principal

    def seal(self, der: bytearray, *, label: str, context: Mapping[str, str]) -> SealedKey:
        """Seal ``der`` under a fresh data key. ``der`` is not wiped here (the caller owns it)."""
        dk = self.kms.generate_data_key(self.principal, self.key_id, dict(context))
        try:
            return seal(
                der,
                dk.plaintext,
                encrypted_data_key=bytes(dk.ciphertext_blob),
                key_arn=dk.key_arn,
                label=label,
                context=context,
            )
        finally:
            wipe(dk.plaintext)

    def seal_key(self, key: keys.PrivateKey, *, label: str, context: Mapping[str, str]) -> SealedKey:
        der = keys.to_der(key)
        try:
            return self.seal(der, label=label, context=context)
        finally:
            wipe(der)

    def open(self, sealed: SealedKey) -> bytearray:
        """The PKCS#8 DER of a sealed key, in a new ``bytearray`` the caller must wipe."""
        dec = self.kms.decrypt(self.principal, sealed.encrypted_data_key, dict(sealed.context), key_id=sealed.key_arn)
        try:
            return open_sealed(sealed, dec.plaintext)
        finally:
            wipe(dec.plaintext)

    @contextmanager
    def private_key(self, sealed: SealedKey) -> Iterator[keys.PrivateKey]:
        """The key object for the duration of a ``with`` block (the DER buffer is wiped at once)."""
        der = self.open(sealed)
        try:
            key = keys.from_der(der)
        finally:
            wipe(der)
        yield key

    def rewrap(self, sealed: SealedKey, context: Mapping[str, str]) -> SealedKey:
        """The same sealed key with its data key encrypted again under ``context``."""
        dec = self.kms.decrypt(self.principal, sealed.encrypted_data_key, dict(sealed.context), key_id=sealed.key_arn)
        try:
            blob = self.kms.encrypt(self.principal, sealed.key_arn, dec.plaintext, dict(context))
        finally:
            wipe(dec.plaintext)
        return sealed.rewrapped(bytes(blob), context)
