"""Key policies, pure: the supported subset of the IAM policy grammar, and its evaluation.

Supported: ``Version``, ``Id``, ``Statement`` (object or list) with ``Sid``, ``Effect`` (Allow | Deny),
``Principal`` (``"*"``, ``{"AWS": ...}``, ``{"Service": ...}``; strings or lists), ``Action``
(``kms:Op``, wildcards ``*`` and ``?``), ``Resource`` (``"*"`` or the key's ARN) and ``Condition`` with
the operators ``StringEquals``, ``StringNotEquals``, ``StringLike``, ``StringNotLike``, ``Bool`` on the
keys ``kms:CallerAccount``, ``kms:ViaService``, ``kms:EncryptionContext:<key>``, ``aws:PrincipalArn``,
``kms:GrantIsForAWSResource``, ``kms:GrantOperations``. Anything else is a
``MalformedPolicyDocumentException`` when the policy is set.

There are no IAM identity policies in lbproxy: the account principal (``arn:aws:iam::ACCOUNT:root``)
in a key policy stands for the account's *users* (admin and declared users), which are treated as
having full IAM permissions; roles (one per load balancer) have none, so they get at keys through
key-policy statements that name them or through grants. An explicit Deny always wins.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbproxy.core.principals import ACCOUNT_ID, account_root_arn

SUPPORTED_OPERATORS = {"StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "Bool"}
SUPPORTED_CONDITION_KEYS = (
    "kms:CallerAccount",
    "kms:ViaService",
    "aws:PrincipalArn",
    "kms:GrantIsForAWSResource",
    "kms:GrantOperations",
)
CONTEXT_KEY_PREFIX = "kms:EncryptionContext:"
MAX_POLICY_BYTES = 32768


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Caller:
    arn: str
    kind: str  # user | role | service

    @property
    def has_iam_permissions(self) -> bool:
        return self.kind == "user"


def default_key_policy() -> dict[str, Any]:
    """The default key policy CreateKey applies (AWS's "Enable IAM User Permissions")."""
    return {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": account_root_arn()},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def acm_managed_key_policy(acm_service: str) -> dict[str, Any]:
    """``aws/acm``: only the ACM service uses it directly; the account may read metadata and revoke
    grants (as AWS-managed key policies allow); everyone else needs a grant."""
    return {
        "Version": "2012-10-17",
        "Id": "auto-acm-1",
        "Statement": [
            {
                "Sid": "Allow ACM to use the key on behalf of the account",
                "Effect": "Allow",
                "Principal": {"Service": acm_service},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:CreateGrant",
                    "kms:RetireGrant",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT_ID}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": account_root_arn()},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*",
            },
        ],
    }


def _as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise PolicyError(f"{what} must be a string or a non-empty list of strings")


def parse_policy(text: str) -> dict[str, Any]:
    """Parse and validate a policy document (raises ``PolicyError`` with the reason)."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"Policy exceeds the maximum size of {MAX_POLICY_BYTES} bytes")
    try:
        doc = json.loads(text)
    except ValueError:
        raise PolicyError("Policy is not valid JSON") from None
    if not isinstance(doc, dict):
        raise PolicyError("Policy must be a JSON object")
    unknown = set(doc) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(f"Policy contains unsupported element(s): {', '.join(sorted(unknown))}")
    if doc.get("Version", "2012-10-17") not in ("2012-10-17", "2008-10-17"):
        raise PolicyError("Policy Version must be 2012-10-17")
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("Policy must contain at least one Statement")
    for i, st in enumerate(statements):
        _validate_statement(st, i)
    return doc


def _validate_statement(st: Any, i: int) -> None:
    where = f"Statement[{i}]"
    if not isinstance(st, dict):
        raise PolicyError(f"{where} must be an object")
    unknown = set(st) - {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}
    if unknown:
        raise PolicyError(f"{where} contains unsupported element(s): {', '.join(sorted(unknown))}")
    if st.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError(f"{where}.Effect must be Allow or Deny")
    principal = st.get("Principal")
    if principal is None:
        raise PolicyError(f"{where} has no Principal")
    if principal != "*":
        if not isinstance(principal, dict) or not principal or set(principal) - {"AWS", "Service"}:
            raise PolicyError(f'{where}.Principal must be "*" or an object with AWS and/or Service')
        for k, v in principal.items():
            _as_list(v, f"{where}.Principal.{k}")
    for a in _as_list(st.get("Action"), f"{where}.Action"):
        if a != "*" and not a.lower().startswith("kms:"):
            raise PolicyError(f"{where}.Action {a!r} is not a kms: action")
    _as_list(st.get("Resource", "*"), f"{where}.Resource")
    cond = st.get("Condition", {})
    if not isinstance(cond, dict):
        raise PolicyError(f"{where}.Condition must be an object")
    for op, block in cond.items():
        if op not in SUPPORTED_OPERATORS:
            raise PolicyError(f"{where}.Condition operator {op!r} is not supported")
        if not isinstance(block, dict):
            raise PolicyError(f"{where}.Condition.{op} must be an object")
        for key, val in block.items():
            if key not in SUPPORTED_CONDITION_KEYS and not key.startswith(CONTEXT_KEY_PREFIX):
                raise PolicyError(f"{where}.Condition key {key!r} is not supported")
            _as_list(val, f"{where}.Condition.{op}.{key}")


def _principal_matches(principal: Any, caller: Caller) -> bool:
    if principal == "*":
        return True
    for kind, values in principal.items():
        for v in _as_list(values, "Principal"):
            if kind == "Service" and caller.kind == "service" and v == caller.arn:
                return True
            if kind == "AWS":
                if v == "*" and caller.kind != "service":
                    return True
                if v in (account_root_arn(), ACCOUNT_ID) and caller.has_iam_permissions:
                    return True
                if v == caller.arn:
                    return True
    return False


def _action_matches(patterns: list[str], action: str) -> bool:
    target = action.lower()
    return any(fnmatch.fnmatchcase(target, p.lower()) for p in patterns)


def _conditions_hold(cond: Mapping[str, Any], values: Mapping[str, str | list[str]]) -> bool:
    for op, block in cond.items():
        for key, expected in block.items():
            wanted = _as_list(expected, key)
            actual = values.get(key)
            present = [actual] if isinstance(actual, str) else list(actual or [])
            if op == "StringEquals" or op == "Bool":
                ok = bool(present) and all(p in wanted for p in present)
            elif op == "StringNotEquals":
                ok = not any(p in wanted for p in present)
            elif op == "StringLike":
                ok = bool(present) and all(any(fnmatch.fnmatchcase(p, w) for w in wanted) for p in present)
            elif op == "StringNotLike":
                ok = not any(any(fnmatch.fnmatchcase(p, w) for w in wanted) for p in present)
            else:
                ok = False
            if not ok:
                return False
    return True


def evaluate(
    policy: Mapping[str, Any],
    caller: Caller,
    action: str,
    key_arn: str,
    values: Mapping[str, str | list[str]],
) -> str:
    """``"deny"`` (explicit), ``"allow"`` or ``"none"`` for ``kms:<action>`` by ``caller``."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    decision = "none"
    full_action = f"kms:{action}"
    for st in statements:
        if not _principal_matches(st["Principal"], caller):
            continue
        if not _action_matches(_as_list(st["Action"], "Action"), full_action):
            continue
        resources = _as_list(st.get("Resource", "*"), "Resource")
        if not any(r == "*" or fnmatch.fnmatchcase(key_arn, r) for r in resources):
            continue
        if not _conditions_hold(st.get("Condition", {}), values):
            continue
        if st["Effect"] == "Deny":
            return "deny"
        decision = "allow"
    return decision
