"""KMS keys as records, pure: what a key is, what ``DescribeKey`` shows of it, which states allow what.

A key is a row of ``kms_keys`` (``keystore``); its material lives apart, one wrapped version per
rotation (an asymmetric key's public key too, in the clear). Its kind (symmetric, HMAC, asymmetric) is its key
spec and key usage (``keyspecs``). The states are AWS's: ``Enabled``, ``Disabled``, ``PendingDeletion``
(deleted by the sweep when the waiting period is over). Only an ``Enabled`` key does cryptography or takes new
grants.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lbproxy.core.principals import ACCOUNT_ID
from lbproxy.keyservice import keyspecs
from lbproxy.keyservice.errors import DisabledException, KMSInvalidStateException

SYMMETRIC_DEFAULT = keyspecs.SYMMETRIC_DEFAULT
ACM_KEY_DESCRIPTION = "Default key that protects my ACM private keys when no other key is defined"
DEFAULT_ROTATION_DAYS = 365
DAY = 86400

ENABLED = "Enabled"
DISABLED = "Disabled"
PENDING_DELETION = "PendingDeletion"


@dataclass(slots=True)
class DataKey:
    """GenerateDataKey's answer: the plaintext data key (the caller wipes it) and its ciphertext blob."""

    plaintext: bytearray
    ciphertext_blob: bytes
    key_arn: str


@dataclass(slots=True)
class DataKeyPair:
    """GenerateDataKeyPair's answer: the private key as PKCS#8 DER (the caller wipes it), the same encrypted
    under the KMS key, and the public key (DER SubjectPublicKeyInfo)."""

    private_plaintext: bytearray
    private_ciphertext_blob: bytes
    public_key: bytes
    key_arn: str
    key_pair_spec: str


@dataclass(slots=True)
class Decrypted:
    """Decrypt's answer: the plaintext (the caller wipes it), the key, the grant that allowed it, and the
    algorithm."""

    plaintext: bytearray
    key_arn: str
    grant_id: str | None
    algorithm: str = SYMMETRIC_DEFAULT


@dataclass(frozen=True, slots=True)
class Key:
    key_id: str
    arn: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: str
    state: str
    creation_date: dt.datetime
    deletion_date: dt.datetime | None
    pending_window: int | None
    policy: dict[str, Any]
    policy_text: str
    rotation_enabled: bool
    rotation_period: int | None
    next_rotation: dt.datetime | None
    tags: list[dict[str, str]]
    current_version: int

    @property
    def kind(self) -> str:
        """``keyspecs.SYMMETRIC``, ``HMAC``, ``ASYMMETRIC_ENCRYPTION`` or ``ASYMMETRIC_SIGNING``."""
        return keyspecs.kind(self.key_spec, self.key_usage)

    def check_operation(self, operation: str) -> None:
        """``InvalidKeyUsageException`` unless a key of this kind supports ``operation``."""
        keyspecs.check_operation(self.arn, self.key_spec, self.key_usage, operation)

    def check_algorithm(self, algorithm: str) -> None:
        """``InvalidKeyUsageException`` unless ``algorithm`` is one of this key's."""
        keyspecs.check_algorithm(self.key_spec, self.key_usage, algorithm)


def utc(value: float | None) -> dt.datetime | None:
    """A stored timestamp (seconds) as an aware UTC datetime."""
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def check_usable(key: Key) -> None:
    """Cryptographic operations, grants and rotation settings need an ``Enabled`` key."""
    if key.state == DISABLED:
        raise DisabledException(f"{key.arn} is disabled.")
    if key.state == PENDING_DELETION:
        raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
    if key.state != ENABLED:
        raise KMSInvalidStateException(f"{key.arn} is {key.state}.")


def refuse_pending_deletion(key: Key) -> None:
    """A key waiting for deletion takes no state change, policy or alias (only CancelKeyDeletion)."""
    if key.state == PENDING_DELETION:
        raise KMSInvalidStateException(f"{key.arn} is pending deletion.")


def metadata(key: Key) -> dict[str, Any]:
    """``KeyMetadata`` as CreateKey and DescribeKey answer it."""
    md: dict[str, Any] = {
        "AWSAccountId": ACCOUNT_ID,
        "KeyId": key.key_id,
        "Arn": key.arn,
        "CreationDate": key.creation_date,
        "Enabled": key.state == ENABLED,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.state,
        "Origin": key.origin,
        "KeyManager": key.key_manager,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        **keyspecs.algorithm_metadata(key.key_spec, key.key_usage),
        "MultiRegion": False,
    }
    if key.state == PENDING_DELETION:
        md["DeletionDate"] = key.deletion_date
        md["PendingDeletionWindowInDays"] = key.pending_window
    return md


def rotation_status(key: Key) -> dict[str, Any]:
    """GetKeyRotationStatus's answer."""
    out: dict[str, Any] = {"KeyRotationEnabled": key.rotation_enabled, "KeyId": key.arn}
    if key.rotation_enabled:
        out["RotationPeriodInDays"] = key.rotation_period
        out["NextRotationDate"] = key.next_rotation
    return out


def next_rotation(key: Key, now: float, period_days: int | None) -> tuple[int, float]:
    """EnableKeyRotation: the rotation period and the next rotation date. Enabling again without a new
    period keeps the date already set; a new period (or a first enabling) counts from ``now``."""
    period = period_days or key.rotation_period or DEFAULT_ROTATION_DAYS
    if key.rotation_enabled and key.next_rotation and not period_days:
        return period, key.next_rotation.timestamp()
    return period, now + period * DAY
