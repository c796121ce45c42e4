"""Key policies and grants, evaluated on values (no sockets)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lbproxy.core.principals import ACM_SERVICE_PRINCIPAL
from lbproxy.keyservice.grants import (
    Grant,
    can_retire,
    child_is_as_constrained,
    context_satisfies,
    grant_allows,
)
from lbproxy.keyservice.policy import (
    Caller,
    PolicyError,
    acm_managed_key_policy,
    default_key_policy,
    evaluate,
    parse_policy,
)

ADMIN = Caller("arn:aws:iam::000000000000:user/admin", "user")
ROLE = Caller("arn:aws:iam::000000000000:role/lb", "role")
ACM = Caller(ACM_SERVICE_PRINCIPAL, "service")
KEY = "arn:aws:kms:us-east-1:000000000000:key/k"
VALUES = {"kms:CallerAccount": "000000000000"}


def test_default_policy_allows_users_not_roles() -> None:
    p = default_key_policy()
    assert evaluate(p, ADMIN, "Decrypt", KEY, VALUES) == "allow"
    assert evaluate(p, ROLE, "Decrypt", KEY, VALUES) == "none"
    assert evaluate(p, ACM, "Decrypt", KEY, VALUES) == "none"


def test_acm_key_policy_only_acm_uses_it() -> None:
    p = acm_managed_key_policy(ACM_SERVICE_PRINCIPAL)
    assert evaluate(p, ACM, "GenerateDataKey", KEY, VALUES) == "allow"
    assert evaluate(p, ACM, "ReEncryptFrom", KEY, VALUES) == "allow"
    assert evaluate(p, ADMIN, "Decrypt", KEY, VALUES) == "none"
    assert evaluate(p, ADMIN, "DescribeKey", KEY, VALUES) == "allow"
    assert evaluate(p, ADMIN, "RevokeGrant", KEY, VALUES) == "allow"
    assert evaluate(p, ADMIN, "ListGrants", KEY, VALUES) == "allow"
    assert evaluate(p, ROLE, "DescribeKey", KEY, VALUES) == "none"


def test_wildcards_conditions_and_explicit_deny() -> None:
    doc = parse_policy(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": ROLE.arn},
                        "Action": "kms:Gen*",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"kms:EncryptionContext:app": "web"}},
                    },
                    {"Effect": "Allow", "Principal": "*", "Action": ["kms:Describe*"], "Resource": "*"},
                    {"Effect": "Deny", "Principal": {"AWS": ADMIN.arn}, "Action": "kms:*", "Resource": "*"},
                ],
            }
        )
    )
    assert evaluate(doc, ROLE, "GenerateDataKey", KEY, {"kms:EncryptionContext:app": "web"}) == "allow"
    assert evaluate(doc, ROLE, "GenerateDataKey", KEY, {"kms:EncryptionContext:app": "db"}) == "none"
    assert evaluate(doc, ROLE, "GenerateDataKey", KEY, {}) == "none"
    assert evaluate(doc, ROLE, "Decrypt", KEY, {}) == "none"
    assert evaluate(doc, ROLE, "DescribeKey", KEY, {}) == "allow"
    assert evaluate(doc, ADMIN, "DescribeKey", KEY, {}) == "deny"


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        json.dumps({"Statement": []}),
        json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]}),
        json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "kms:*",
                        "Condition": {"NumericLessThan": {"kms:CallerAccount": "1"}},
                    }
                ]
            }
        ),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "NotResource": "*"}]}),
    ],
)
def test_malformed_policies_are_rejected(doc: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(doc)


def _grant(**kw: object) -> Grant:
    base = dict(
        grant_id="g" * 64,
        key_id="k",
        name="IssuedThroughACM",
        grantee=ROLE.arn,
        retiring=ACM.arn,
        operations=("Decrypt", "DescribeKey"),
        constraints={"EncryptionContextEquals": {"a": "1", "b": "2"}},
        creation_date=dt.datetime.now(dt.UTC),
        issuing_account="arn:aws:iam::000000000000:root",
        token="t",
    )
    base.update(kw)
    return Grant(**base)  # type: ignore[arg-type]


def test_grant_equals_constraint() -> None:
    g = _grant()
    assert grant_allows(g, ROLE.arn, "Decrypt", {"a": "1", "b": "2"})
    assert not grant_allows(g, ROLE.arn, "Decrypt", {"a": "1"})
    assert not grant_allows(g, ROLE.arn, "Decrypt", {"a": "1", "b": "2", "c": "3"})
    assert not grant_allows(g, ADMIN.arn, "Decrypt", {"a": "1", "b": "2"})
    assert not grant_allows(g, ROLE.arn, "Encrypt", {"a": "1", "b": "2"})
    # Constraints are not applied to DescribeKey.
    assert grant_allows(g, ROLE.arn, "DescribeKey", {})


def test_grant_subset_constraint() -> None:
    c = {"EncryptionContextSubset": {"a": "1"}}
    assert context_satisfies(c, {"a": "1", "z": "9"})
    assert not context_satisfies(c, {"a": "2"})
    assert not context_satisfies(c, {})


def test_retire_permissions() -> None:
    g = _grant()
    assert can_retire(g, ACM.arn)
    assert not can_retire(g, ROLE.arn)
    assert can_retire(_grant(operations=("Decrypt", "RetireGrant")), ROLE.arn)
    assert not can_retire(g, ADMIN.arn)


def test_child_grants_must_be_as_constrained() -> None:
    eq = {"EncryptionContextEquals": {"a": "1"}}
    sub = {"EncryptionContextSubset": {"a": "1"}}
    assert child_is_as_constrained(None, None)
    assert child_is_as_constrained(eq, eq)
    assert not child_is_as_constrained(eq, None)
    assert not child_is_as_constrained(eq, sub)
    assert child_is_as_constrained(sub, {"EncryptionContextSubset": {"a": "1", "b": "2"}})
    assert child_is_as_constrained(sub, {"EncryptionContextEquals": {"a": "1", "b": "2"}})
    assert not child_is_as_constrained(sub, {"EncryptionContextSubset": {"b": "2"}})
