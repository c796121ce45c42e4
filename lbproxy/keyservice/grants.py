"""Grants, pure: what a grant allows, to whom, under which encryption context; who may retire it.

As AWS documents: a grant allows its operations to its grantee principal. Its constraints
(``EncryptionContextEquals`` / ``EncryptionContextSubset``) must hold for cryptographic operations;
they are not applied to ``DescribeKey`` and ``RetireGrant``. A grant that allows ``CreateGrant`` lets
its grantee create grants that are at least as constrained. A grant can be retired by its retiring
principal, or by its grantee when ``RetireGrant`` is one of its operations; revoking takes
``kms:RevokeGrant`` permission on the key (key policy), which no grant can give.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbproxy.keyservice.errors import InvalidGrantIdException, ValidationException

GRANT_OPERATIONS = (
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
)
#: Operations a grant's encryption-context constraints do not apply to.
CONTEXT_FREE_OPERATIONS = frozenset({"DescribeKey", "RetireGrant", "CreateGrant", "GetPublicKey"})
_GRANT_NAME_RE = re.compile(r"^[a-zA-Z0-9:/_-]+$")
#: An encryption-context constraint: at most 8 pairs, each value at most 384 characters (CreateGrant's doc).
MAX_CONSTRAINT_PAIRS = 8
MAX_CONSTRAINT_VALUE = 384
_GRANT_ID_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    key_id: str
    name: str
    grantee: str
    retiring: str | None
    operations: tuple[str, ...]
    constraints: Mapping[str, Mapping[str, str]] | None
    creation_date: dt.datetime
    issuing_account: str
    token: str


def context_satisfies(constraints: Mapping[str, Mapping[str, str]] | None, context: Mapping[str, str]) -> bool:
    if not constraints:
        return True
    equals = constraints.get("EncryptionContextEquals")
    if equals is not None and dict(equals) != dict(context):
        return False
    subset = constraints.get("EncryptionContextSubset")
    return subset is None or all(context.get(k) == v for k, v in subset.items())


def grant_allows(grant: Grant, principal_arn: str, operation: str, context: Mapping[str, str]) -> bool:
    if grant.grantee != principal_arn or operation not in grant.operations:
        return False
    if operation in CONTEXT_FREE_OPERATIONS:
        return True
    return context_satisfies(grant.constraints, context)


def child_is_as_constrained(
    parent: Mapping[str, Mapping[str, str]] | None, child: Mapping[str, Mapping[str, str]] | None
) -> bool:
    """Whether a grant made through ``parent`` (with ``CreateGrant``) is at least as constrained."""
    if not parent:
        return True
    if not child:
        return False
    p_eq, p_sub = parent.get("EncryptionContextEquals"), parent.get("EncryptionContextSubset")
    c_eq, c_sub = child.get("EncryptionContextEquals"), child.get("EncryptionContextSubset")
    if p_eq is not None:
        return c_eq is not None and dict(c_eq) == dict(p_eq)
    assert p_sub is not None
    narrower = c_eq if c_eq is not None else c_sub
    return narrower is not None and all(narrower.get(k) == v for k, v in p_sub.items())


def can_retire(grant: Grant, principal_arn: str) -> bool:
    if grant.retiring is not None and grant.retiring == principal_arn:
        return True
    return grant.grantee == principal_arn and "RetireGrant" in grant.operations


def same_parameters(
    grant: Grant, grantee: str, retiring: str | None, operations: tuple[str, ...], constraints: Mapping[str, Any] | None
) -> bool:
    """CreateGrant with the same Name and these parameters returns the existing grant (idempotent)."""
    return (
        grant.grantee == grantee
        and grant.retiring == retiring
        and sorted(grant.operations) == sorted(operations)
        and _norm(grant.constraints) == _norm(constraints)
    )


def _norm(c: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    return {k: dict(v) for k, v in (c or {}).items() if v is not None}


def checked_request(
    operations: list[str], constraints: Mapping[str, Mapping[str, str] | None] | None, name: str | None
) -> tuple[tuple[str, ...], dict[str, dict[str, str]] | None]:
    """CreateGrant's parameters checked (AWS's wording): the operations without repeats, the constraints
    without empty members (at most one of ``EncryptionContextEquals``/``EncryptionContextSubset``)."""
    if not operations:
        raise ValidationException(
            "1 validation error detected: Value '[]' at 'operations' failed to "
            "satisfy constraint: Member must have length greater than or equal to 1"
        )
    if list(dict.fromkeys(operations)) == ["CreateGrant"]:
        raise ValidationException("Grants must not contain only the CreateGrant operation.")
    checked: dict[str, dict[str, str]] | None = None
    if constraints:
        checked = {k: dict(v) for k, v in constraints.items() if v is not None}
        if len(checked) > 1:
            raise ValidationException(
                "Grant constraints may contain EncryptionContextEquals or EncryptionContextSubset, not both."
            )
        for member, pairs in checked.items():
            if len(pairs) > MAX_CONSTRAINT_PAIRS or any(len(v) > MAX_CONSTRAINT_VALUE for v in pairs.values()):
                raise ValidationException(
                    f"{member} may hold at most {MAX_CONSTRAINT_PAIRS} encryption context pairs, each value at most "
                    f"{MAX_CONSTRAINT_VALUE} characters."
                )
    if name is not None and not _GRANT_NAME_RE.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )
    return tuple(dict.fromkeys(operations)), checked


def check_grant_id(grant_id: str) -> None:
    if not _GRANT_ID_RE.fullmatch(grant_id):
        raise InvalidGrantIdException(f"Invalid grant ID {grant_id}")


def grant_entry(grant: Grant, key_arn: str) -> dict[str, Any]:
    """A ``GrantListEntry`` as ListGrants and ListRetirableGrants show it."""
    entry: dict[str, Any] = {
        "KeyId": key_arn,
        "GrantId": grant.grant_id,
        "Name": grant.name,
        "CreationDate": grant.creation_date,
        "GranteePrincipal": grant.grantee,
        "IssuingAccount": grant.issuing_account,
        "Operations": list(grant.operations),
    }
    if grant.retiring:
        entry["RetiringPrincipal"] = grant.retiring
    if grant.constraints:
        entry["Constraints"] = grant.constraints
    return entry
