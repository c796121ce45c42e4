"""The key service's pure parts, on values (no database, no sockets): identifiers and ARNs, key states and
rotation dates, pagination, CreateGrant's parameter rules."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from lbproxy.keyservice import keys, names, pages
from lbproxy.keyservice.errors import (
    DisabledException,
    InvalidAliasNameException,
    InvalidGrantIdException,
    InvalidMarkerException,
    KMSInvalidStateException,
    NotFoundException,
    ValidationException,
)
from lbproxy.keyservice.grants import check_grant_id, checked_request

REGION = "us-east-1"
KEY_ID = "0f0e0d0c-0b0a-4908-8706-050403020100"


def _key(**changes: object) -> keys.Key:
    fields: dict[str, object] = {
        "key_id": KEY_ID,
        "arn": names.key_arn(REGION, KEY_ID),
        "description": "",
        "key_usage": "ENCRYPT_DECRYPT",
        "key_spec": keys.SYMMETRIC_DEFAULT,
        "origin": "AWS_KMS",
        "key_manager": "CUSTOMER",
        "state": keys.ENABLED,
        "creation_date": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "deletion_date": None,
        "pending_window": None,
        "policy": {},
        "policy_text": "{}",
        "rotation_enabled": False,
        "rotation_period": None,
        "next_rotation": None,
        "tags": [],
        "current_version": 1,
    }
    fields.update(changes)
    return keys.Key(**fields)  # type: ignore[arg-type]


def test_identifiers_reduce_to_the_name_inside_them() -> None:
    assert names.identifier_name(REGION, KEY_ID) == KEY_ID
    assert names.identifier_name(REGION, names.key_arn(REGION, KEY_ID)) == KEY_ID
    assert names.identifier_name(REGION, "alias/web") == "alias/web"
    assert names.identifier_name(REGION, names.alias_arn(REGION, "alias/web")) == "alias/web"
    for other in (names.key_arn("eu-west-1", KEY_ID), names.arn_prefix(REGION) + "grant/x"):
        with pytest.raises(NotFoundException, match="Invalid arn"):
            names.identifier_name(REGION, other)
    assert names.is_key_id(KEY_ID) and not names.is_key_id("not-a-uuid")


def test_alias_names_follow_aws_rules() -> None:
    names.check_alias_name("alias/web-1:prod/x_y")
    for bad, why in (("web", "prefix"), ("alias/aws/acm", "reserved"), ("alias/sp ace", "characters")):
        with pytest.raises(InvalidAliasNameException, match=why):
            names.check_alias_name(bad)
    with pytest.raises(InvalidAliasNameException, match="characters"):
        names.check_alias_name("alias/" + "a" * 251)


def test_key_states_and_metadata() -> None:
    keys.check_usable(_key())
    with pytest.raises(DisabledException):
        keys.check_usable(_key(state=keys.DISABLED))
    pending = _key(state=keys.PENDING_DELETION, deletion_date=dt.datetime(2024, 2, 1, tzinfo=dt.UTC), pending_window=7)
    with pytest.raises(KMSInvalidStateException, match="pending deletion"):
        keys.check_usable(pending)
    with pytest.raises(KMSInvalidStateException):
        keys.refuse_pending_deletion(pending)
    keys.refuse_pending_deletion(_key(state=keys.DISABLED))
    md = keys.metadata(pending)
    assert md["KeyState"] == "PendingDeletion" and md["Enabled"] is False and md["PendingDeletionWindowInDays"] == 7
    assert "DeletionDate" not in keys.metadata(_key())


def test_next_rotation_keeps_the_date_unless_the_period_changes() -> None:
    now = 1_000_000.0
    assert keys.next_rotation(_key(), now, None) == (keys.DEFAULT_ROTATION_DAYS, now + 365 * keys.DAY)
    set_date = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    enabled = _key(rotation_enabled=True, rotation_period=90, next_rotation=set_date)
    assert keys.next_rotation(enabled, now, None) == (90, set_date.timestamp())
    assert keys.next_rotation(enabled, now, 30) == (30, now + 30 * keys.DAY)
    assert keys.rotation_status(enabled)["RotationPeriodInDays"] == 90
    assert "NextRotationDate" not in keys.rotation_status(_key())


def test_pages_and_markers() -> None:
    items = [{"n": i} for i in range(5)]
    first = pages.page("Items", items, 2, None)
    assert first["Items"] == items[:2] and first["Truncated"] is True
    second = pages.page("Items", items, 2, first["NextMarker"])
    assert second["Items"] == items[2:4]
    last = pages.page("Items", items, 2, second["NextMarker"])
    assert last == {"Items": items[4:], "Truncated": False}
    for marker in ("%%%", base64.urlsafe_b64encode(b"99").decode(), base64.urlsafe_b64encode(b"-1").decode()):
        with pytest.raises(InvalidMarkerException):
            pages.paginate(items, 2, marker)


def test_create_grant_parameters() -> None:
    ops, constraints = checked_request(["Decrypt", "Decrypt", "DescribeKey"], None, "IssuedThroughACM")
    assert ops == ("Decrypt", "DescribeKey") and constraints is None
    _, constraints = checked_request(["Decrypt"], {"EncryptionContextEquals": {"a": "b"}}, None)
    assert constraints == {"EncryptionContextEquals": {"a": "b"}}
    with pytest.raises(ValidationException, match="length greater than or equal to 1"):
        checked_request([], None, None)
    with pytest.raises(ValidationException, match="not both"):
        checked_request(["Decrypt"], {"EncryptionContextEquals": {}, "EncryptionContextSubset": {}}, None)
    with pytest.raises(ValidationException, match="regular expression"):
        checked_request(["Decrypt"], None, "bad name")
    check_grant_id("ab" * 32)
    with pytest.raises(InvalidGrantIdException):
        check_grant_id("ab")
