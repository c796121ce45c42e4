"""Key management: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription, GetKeyPolicy,
PutKeyPolicy, ListKeyPolicies (a key has one policy, ``default``).

CreateKey makes symmetric encryption keys, HMAC keys and asymmetric RSA and ECC keys (``keyspecs`` says which key
usage goes with which key spec, and what is not emulated), origin ``AWS_KMS``, single Region; other origins and
multi-Region keys are ``UnsupportedOperationException``. Its tags follow ``tags``' rules. A key policy is checked
when it is set (``policy.parse_policy``) and, unless the caller bypasses the lockout check, must still let the
caller change it afterwards. AWS managed keys (``alias/aws/acm``) keep their policy and description (their key
policy gives the account no ``kms:UpdateKeyDescription``). A key pending deletion takes no new description.
"""

from __future__ import annotations

import json
from typing import Any

from lbproxy.contract.vocabulary import KEY_DISABLED, KEY_ENABLED
from lbproxy.core.principals import Principal
from lbproxy.keyservice import keyspecs, pages
from lbproxy.keyservice import tags as tag_rules
from lbproxy.keyservice.errors import (
    MalformedPolicyDocumentException,
    NotFoundException,
    UnsupportedOperationException,
)
from lbproxy.keyservice.keys import (
    DISABLED,
    ENABLED,
    Key,
    metadata,
    refuse_pending_deletion,
)
from lbproxy.keyservice.keystore import KeyStore, caller, policy_values
from lbproxy.keyservice.policy import PolicyError, default_key_policy, evaluate, parse_policy

#: The event a key policy change publishes (its grantees re-check what they may do).
KEY_POLICY_CHANGED = "key.policy_changed"


class KeyManagement(KeyStore):
    def create_key(
        self,
        principal: Principal,
        description: str = "",
        policy: str | None = None,
        key_usage: str | None = None,
        key_spec: str | None = None,
        origin: str = "AWS_KMS",
        tags: list[dict[str, str]] | None = None,
        bypass_lockout_check: bool = False,
        multi_region: bool = False,
        customer_master_key_spec: str | None = None,
    ) -> dict[str, Any]:
        """A new customer managed key. ``key_usage`` may be left out only for a symmetric encryption key."""
        self._require_iam(principal, "CreateKey")
        spec, usage = keyspecs.checked_spec(key_spec, customer_master_key_spec, key_usage)
        checked_tags = tag_rules.with_tags([], tags or [])
        if origin != "AWS_KMS":
            raise UnsupportedOperationException(f"Origin {origin} is not supported; use AWS_KMS.")
        if multi_region:
            raise UnsupportedOperationException("Multi-Region keys are not supported.")
        doc = default_key_policy()
        if policy is not None:
            doc = self._checked_policy(policy, principal, bypass_lockout_check)
        key_id = self._insert_key(description, doc, "CUSTOMER", checked_tags, key_spec=spec, key_usage=usage)
        return self._metadata(self._resolve(key_id))

    def _checked_policy(self, text: str, principal: Principal, bypass: bool) -> dict[str, Any]:
        try:
            doc = parse_policy(text)
        except PolicyError as exc:
            raise MalformedPolicyDocumentException(str(exc)) from None
        if not bypass and evaluate(doc, caller(principal), "PutKeyPolicy", "*", policy_values(principal)) != "allow":
            raise MalformedPolicyDocumentException(
                "The new key policy will not allow you to update the key policy in the future."
            )
        return doc

    def _metadata(self, key: Key) -> dict[str, Any]:
        return metadata(key)

    def describe_key(self, principal: Principal, key_id: str, audit: dict[str, Any] | None = None) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "DescribeKey", audit=audit)
        return self._metadata(key)

    def list_keys(self, principal: Principal, limit: int = 100, marker: str | None = None) -> dict[str, Any]:
        self._require_iam(principal, "ListKeys")
        rows = self._db.query("SELECT key_id FROM kms_keys ORDER BY creation_date, key_id")
        items = [{"KeyId": r["key_id"], "KeyArn": self.arn_for(r["key_id"])} for r in rows]
        return pages.page("Keys", items, limit, marker)

    def _set_state(
        self, principal: Principal, key_id: str, action: str, new_state: str, event: str, **fields: Any
    ) -> Key:
        key = self._resolve(key_id)
        self._authorize(principal, key, action)
        refuse_pending_deletion(key)
        with self._db.transaction() as tx:
            sets = ", ".join(["state = ?"] + [f"{k} = ?" for k in fields])
            tx.execute(f"UPDATE kms_keys SET {sets} WHERE key_id = ?", (new_state, *fields.values(), key.key_id))
            if key.state != new_state:
                self._publish_key_event(event, key, new_state)
        return self._resolve(key.key_id)

    def enable_key(self, principal: Principal, key_id: str) -> None:
        self._set_state(principal, key_id, "EnableKey", ENABLED, KEY_ENABLED)

    def disable_key(self, principal: Principal, key_id: str) -> None:
        self._set_state(principal, key_id, "DisableKey", DISABLED, KEY_DISABLED)

    def update_key_description(self, principal: Principal, key_id: str, description: str) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "UpdateKeyDescription")
        refuse_pending_deletion(key)
        with self._db.transaction() as tx:
            tx.execute("UPDATE kms_keys SET description = ? WHERE key_id = ?", (description, key.key_id))

    def get_key_policy(self, principal: Principal, key_id: str, policy_name: str = "default") -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "GetKeyPolicy")
        if policy_name != "default":
            raise NotFoundException(f"Policy {policy_name} not found for key {key.arn}")
        return {"Policy": key.policy_text, "PolicyName": "default"}

    def list_key_policies(self, principal: Principal, key_id: str) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "ListKeyPolicies")
        return {"PolicyNames": ["default"], "Truncated": False}

    def put_key_policy(
        self,
        principal: Principal,
        key_id: str,
        policy: str,
        policy_name: str = "default",
        bypass_lockout_check: bool = False,
    ) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "PutKeyPolicy")
        if policy_name != "default":
            raise NotFoundException(f"Policy {policy_name} not found for key {key.arn}")
        if key.key_manager == "AWS":
            raise UnsupportedOperationException(f"{key.arn} is an AWS managed key; its policy cannot be changed.")
        refuse_pending_deletion(key)
        doc = self._checked_policy(policy, principal, bypass_lockout_check)
        with self._db.transaction() as tx:
            tx.execute("UPDATE kms_keys SET policy = ? WHERE key_id = ?", (json.dumps(doc, indent=2), key.key_id))
            self._publish_key_event(KEY_POLICY_CHANGED, key, key.state)
