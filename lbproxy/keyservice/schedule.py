"""What happens to keys over time: ScheduleKeyDeletion, CancelKeyDeletion, automatic rotation
(EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus) and ``tick``, the sweep that carries them out.

A key scheduled for deletion waits ``PendingWindowInDays`` (7 to 30 days, as KMS enforces beyond the model's
1-365; 30 by default) in ``PendingDeletion`` (cancelling leaves it ``Disabled``); when the window is over the
sweep deletes the key with its material, public key, aliases and grants. Rotation adds a new material version
and makes it current; older versions stay, so ciphertexts they sealed still decrypt. Only symmetric encryption
keys rotate (``UnsupportedOperationException`` for the others, whose rotation status is always off). AWS
managed keys rotate every year and their rotation cannot be changed.
"""

from __future__ import annotations

from typing import Any

from lbproxy.contract.vocabulary import KEY_DELETED, KEY_PENDING_DELETION, KEY_ROTATED
from lbproxy.core.principals import Principal
from lbproxy.keyservice.errors import KMSInvalidStateException, UnsupportedOperationException, ValidationException
from lbproxy.keyservice.keys import (
    DAY,
    DEFAULT_ROTATION_DAYS,
    DISABLED,
    PENDING_DELETION,
    Key,
    next_rotation,
    refuse_pending_deletion,
    rotation_status,
    utc,
)
from lbproxy.keyservice.keyspecs import SYMMETRIC
from lbproxy.keyservice.keystore import KeyStore

#: The event CancelKeyDeletion publishes (the key is ``Disabled`` again).
KEY_DELETION_CANCELLED = "key.deletion_cancelled"
#: ScheduleKeyDeletion's waiting period, in days (the operation's documentation: "between 7 and 30, inclusive").
MIN_PENDING_DAYS, MAX_PENDING_DAYS = 7, 30


def check_pending_window(days: int) -> None:
    """The model allows 1-365; KMS enforces 7-30 (said in the model's own wording)."""
    if MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS:
        return
    bound = (
        f"greater than or equal to {MIN_PENDING_DAYS}"
        if days < MIN_PENDING_DAYS
        else f"less than or equal to {MAX_PENDING_DAYS}"
    )
    raise ValidationException(
        f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: "
        f"Member must have value {bound}"
    )


def refuse_rotation(key: Key) -> None:
    """Automatic rotation is for symmetric encryption keys only."""
    if key.kind != SYMMETRIC:
        raise UnsupportedOperationException(
            "You cannot perform this operation on a non-symmetric key or a key with non-ENCRYPT_DECRYPT key usage."
        )


class KeySchedule(KeyStore):
    # ---------------------------------------------------------------- deletion

    def schedule_key_deletion(self, principal: Principal, key_id: str, pending_days: int = 30) -> dict[str, Any]:
        check_pending_window(pending_days)
        key = self._resolve(key_id)
        self._authorize(principal, key, "ScheduleKeyDeletion")
        refuse_pending_deletion(key)
        when = self._clock.time() + pending_days * DAY
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_keys SET state = 'PendingDeletion', deletion_date = ?, pending_window = ? WHERE key_id = ?",
                (when, pending_days, key.key_id),
            )
            self._publish_key_event(KEY_PENDING_DELETION, key, PENDING_DELETION, deletionDate=when)
        return {
            "KeyId": key.arn,
            "DeletionDate": utc(when),
            "KeyState": PENDING_DELETION,
            "PendingWindowInDays": pending_days,
        }

    def cancel_key_deletion(self, principal: Principal, key_id: str) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "CancelKeyDeletion")
        if key.state != PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is not pending deletion.")
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_keys SET state = 'Disabled', deletion_date = NULL, pending_window = NULL WHERE key_id = ?",
                (key.key_id,),
            )
            self._publish_key_event(KEY_DELETION_CANCELLED, key, DISABLED)
        return {"KeyId": key.arn}

    def _delete_key(self, key: Key) -> None:
        """The end of the waiting period: the key, its material, aliases and grants go."""
        with self._db.transaction() as tx:
            self._publish_key_event(KEY_DELETED, key, "Deleted")
            tx.execute("DELETE FROM kms_grants WHERE key_id = ?", (key.key_id,))
            tx.execute("DELETE FROM kms_aliases WHERE key_id = ?", (key.key_id,))
            tx.execute("DELETE FROM kms_key_material WHERE key_id = ?", (key.key_id,))
            tx.execute("DELETE FROM kms_public_keys WHERE key_id = ?", (key.key_id,))
            tx.execute("DELETE FROM kms_keys WHERE key_id = ?", (key.key_id,))

    # ---------------------------------------------------------------- rotation

    def enable_key_rotation(self, principal: Principal, key_id: str, period_days: int | None = None) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "EnableKeyRotation")
        self._usable(key)
        refuse_rotation(key)
        if key.key_manager == "AWS":
            raise UnsupportedOperationException(f"{key.arn} is an AWS managed key; it rotates every year.")
        period, when = next_rotation(key, self._clock.time(), period_days)
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_keys SET rotation_enabled = 1, rotation_period = ?, next_rotation = ? WHERE key_id = ?",
                (period, when, key.key_id),
            )

    def disable_key_rotation(self, principal: Principal, key_id: str) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "DisableKeyRotation")
        self._usable(key)
        refuse_rotation(key)
        if key.key_manager == "AWS":
            raise UnsupportedOperationException(f"{key.arn} is an AWS managed key; its rotation cannot be changed.")
        with self._db.transaction() as tx:
            tx.execute("UPDATE kms_keys SET rotation_enabled = 0, next_rotation = NULL WHERE key_id = ?", (key.key_id,))

    def get_key_rotation_status(self, principal: Principal, key_id: str) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "GetKeyRotationStatus")
        return rotation_status(key)

    def rotate_now(self, key: Key) -> None:
        """A new material version becomes current; the next rotation is one period from now."""
        version = key.current_version + 1
        wrapped, _ = self._new_material(key.key_id, version, key.key_spec)
        now = self._clock.time()
        with self._db.transaction() as tx:
            self._insert_material(tx, key.key_id, version, wrapped, now)
            tx.execute(
                "UPDATE kms_keys SET current_version = ?, next_rotation = ? WHERE key_id = ?",
                (version, now + (key.rotation_period or DEFAULT_ROTATION_DAYS) * DAY, key.key_id),
            )
            self._publish_key_event(KEY_ROTATED, key, key.state, version=version)

    # ---------------------------------------------------------------- the sweep

    def tick(self) -> None:
        """Delete keys whose waiting period is over; rotate keys whose rotation date has come."""
        now = self._clock.time()
        for row in self._db.query(
            "SELECT * FROM kms_keys WHERE state = 'PendingDeletion' AND deletion_date <= ?", (now,)
        ):
            self._delete_key(self._row_to_key(row))
        for row in self._db.query(
            "SELECT * FROM kms_keys WHERE rotation_enabled = 1 AND state = 'Enabled' AND next_rotation <= ?",
            (now,),
        ):
            self.rotate_now(self._row_to_key(row))
