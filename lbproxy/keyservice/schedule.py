"""What happens to keys over time: ScheduleKeyDeletion, CancelKeyDeletion, automatic rotation
(EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus) and ``tick``, the sweep that carries them out.

A key scheduled for deletion waits ``PendingWindowInDays`` in ``PendingDeletion`` (cancelling leaves it
``Disabled``); when the window is over the sweep deletes the key with its material, aliases and grants.
Rotation adds a new material version and makes it current; older versions stay, so ciphertexts they
sealed still decrypt. AWS managed keys rotate every year and their rotation cannot be changed.
"""

from __future__ import annotations

from typing import Any

from lbproxy.contract.vocabulary import KEY_DELETED, KEY_PENDING_DELETION, KEY_ROTATED
from lbproxy.core.principals import Principal
from lbproxy.keyservice.errors import KMSInvalidStateException, UnsupportedOperationException
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
from lbproxy.keyservice.keystore import KeyStore

#: The event CancelKeyDeletion publishes (the key is ``Disabled`` again).
KEY_DELETION_CANCELLED = "key.deletion_cancelled"


class KeySchedule(KeyStore):
    # ---------------------------------------------------------------- deletion

    def schedule_key_deletion(self, principal: Principal, key_id: str, pending_days: int = 30) -> dict[str, Any]:
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
            tx.execute("DELETE FROM kms_keys WHERE key_id = ?", (key.key_id,))

    # ---------------------------------------------------------------- rotation

    def enable_key_rotation(self, principal: Principal, key_id: str, period_days: int | None = None) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "EnableKeyRotation")
        self._usable(key)
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
        wrapped = self._new_material(key.key_id, version)
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
