"""Grant operations: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (rows of
``kms_grants``; what a grant allows and who may retire it are pure, in ``grants``).

CreateGrant with a Name and the same parameters returns the existing grant. A grant made through another
grant is at least as constrained as that one. A grant allows only operations its key supports, and carries an
encryption-context constraint only on a symmetric encryption key (``keyspecs.check_grant``: a grant for Sign on a
symmetric key is a ``ValidationException``). Every change publishes a ``grant.*`` event addressed to the
grantee and the retiring principal: a load balancer learns at once that its grant is gone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lbproxy.contract.vocabulary import GRANT_CREATED, GRANT_RETIRED, GRANT_REVOKED
from lbproxy.core.principals import Principal, account_root_arn
from lbproxy.keyservice import envelope, keyspecs, pages
from lbproxy.keyservice.errors import (
    InvalidGrantTokenException,
    NotFoundException,
    ValidationException,
    access_denied,
    check_dry_run,
)
from lbproxy.keyservice.grants import (
    Grant,
    can_retire,
    check_grant_id,
    checked_request,
    child_is_as_constrained,
    grant_entry,
    same_parameters,
)
from lbproxy.keyservice.keys import Key
from lbproxy.keyservice.keystore import KeyStore, caller, policy_values
from lbproxy.keyservice.policy import evaluate


class GrantOperations(KeyStore):
    def create_grant(
        self,
        principal: Principal,
        key_id: str,
        grantee: str,
        operations: list[str],
        *,
        retiring_principal: str | None = None,
        constraints: Mapping[str, Mapping[str, str]] | None = None,
        name: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[str, str]:
        key = self._resolve(key_id)
        via = self._authorize(principal, key, "CreateGrant", audit=audit)
        if via is not None and not child_is_as_constrained(via.constraints, constraints):
            raise access_denied(principal.arn, "CreateGrant", key.arn)
        self._usable(key)
        ops, checked = checked_request(operations, constraints, name)
        keyspecs.check_grant(key.key_spec, key.key_usage, ops, checked)
        check_dry_run(dry_run)
        with self._db.transaction() as tx:
            if name:
                for g in self._grants_for(key.key_id):
                    if g.name == name and same_parameters(g, grantee, retiring_principal, ops, checked):
                        return g.grant_id, g.token
            grant_id = hashlib.sha256(envelope.random_bytes(32)).hexdigest()
            token = base64.urlsafe_b64encode(bytes(envelope.random_bytes(96))).decode().rstrip("=")
            seq_row = tx.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM kms_grants").fetchone()
            tx.execute(
                "INSERT INTO kms_grants (grant_id, key_id, name, grantee, retiring, operations, constraints,"
                " creation_date, issuing_account, token, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    grant_id,
                    key.key_id,
                    name or "",
                    grantee,
                    retiring_principal,
                    json.dumps(list(ops)),
                    json.dumps(checked) if checked else None,
                    self._clock.time(),
                    account_root_arn(),
                    token,
                    seq_row[0],
                ),
            )
            grant = self._row_to_grant(
                tx.execute("SELECT * FROM kms_grants WHERE grant_id = ?", (grant_id,)).fetchone()
            )
            self._publish_grant_event(GRANT_CREATED, key, grant, principal)
        if audit is not None:
            audit.setdefault("responseElements", {})["grantId"] = grant_id
        return grant_id, token

    def _publish_grant_event(self, event: str, key: Key, grant: Grant, by: Principal) -> None:
        audience = {grant.grantee} | ({grant.retiring} if grant.retiring else set())
        self._events.publish(
            event,
            {
                "keyId": key.key_id,
                "keyArn": key.arn,
                "grantId": grant.grant_id,
                "name": grant.name,
                "granteePrincipal": grant.grantee,
                "retiringPrincipal": grant.retiring,
                "operations": list(grant.operations),
                "constraints": grant.constraints,
                "by": by.arn,
            },
            audience,
        )

    def grant_entry(self, grant: Grant) -> dict[str, Any]:
        return grant_entry(grant, self.arn_for(grant.key_id))

    def list_grants(
        self,
        principal: Principal,
        key_id: str,
        grant_id: str | None = None,
        grantee: str | None = None,
        limit: int = 50,
        marker: str | None = None,
    ) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "ListGrants")
        grants = self._grants_for(key.key_id)
        if grant_id is not None:
            grants = [g for g in grants if g.grant_id == grant_id]
        if grantee is not None:
            grants = [g for g in grants if g.grantee == grantee]
        return pages.page("Grants", [self.grant_entry(g) for g in grants], limit, marker)

    def list_retirable_grants(
        self, principal: Principal, retiring_principal: str, limit: int = 50, marker: str | None = None
    ) -> dict[str, Any]:
        self._require_iam(principal, "ListRetirableGrants")
        rows = self._db.query("SELECT * FROM kms_grants WHERE retiring = ? ORDER BY seq", (retiring_principal,))
        return pages.page("Grants", [self.grant_entry(self._row_to_grant(r)) for r in rows], limit, marker)

    def grants_for_key(self, key_id: str) -> list[Grant]:
        """All grants on a key, unauthenticated (for the control plane's own use: dashboard, Lightsail)."""
        return self._grants_for(self._resolve(key_id).key_id)

    def retire_grant(
        self,
        principal: Principal,
        *,
        key_id: str | None = None,
        grant_id: str | None = None,
        grant_token: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> None:
        if grant_token is not None:
            row = self._db.query_one("SELECT * FROM kms_grants WHERE token = ?", (grant_token,))
            if row is None:
                raise InvalidGrantTokenException("Invalid grant token.")
        elif key_id is not None and grant_id is not None:
            key = self._resolve(key_id)
            check_grant_id(grant_id)
            row = self._db.query_one(
                "SELECT * FROM kms_grants WHERE grant_id = ? AND key_id = ?", (grant_id, key.key_id)
            )
            if row is None:
                raise NotFoundException(f"Grant ID {grant_id} not found")
        else:
            raise ValidationException("Either GrantToken, or both KeyId and GrantId, must be specified.")
        grant = self._row_to_grant(row)
        key = self._resolve(grant.key_id)
        if audit is not None:
            audit["resources"] = [{"ARN": key.arn, "type": "AWS::KMS::Key"}]
            audit.setdefault("requestParameters", {})["grantId"] = grant.grant_id
        if not can_retire(grant, principal.arn):
            raise access_denied(principal.arn, "RetireGrant", key.arn)
        check_dry_run(dry_run)
        self._delete_grant(grant, key, GRANT_RETIRED, principal)

    def revoke_grant(
        self,
        principal: Principal,
        key_id: str,
        grant_id: str,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> None:
        key = self._resolve(key_id)
        # RevokeGrant needs key-policy permission; a grant can never confer it.
        if evaluate(key.policy, caller(principal), "RevokeGrant", key.arn, policy_values(principal)) != "allow":
            raise access_denied(principal.arn, "RevokeGrant", key.arn)
        check_grant_id(grant_id)
        row = self._db.query_one("SELECT * FROM kms_grants WHERE grant_id = ? AND key_id = ?", (grant_id, key.key_id))
        if row is None:
            raise NotFoundException(f"Grant ID {grant_id} not found")
        grant = self._row_to_grant(row)
        check_dry_run(dry_run)
        self._delete_grant(grant, key, GRANT_REVOKED, principal)

    def _delete_grant(self, grant: Grant, key: Key, event: str, by: Principal) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM kms_grants WHERE grant_id = ?", (grant.grant_id,))
            self._publish_grant_event(event, key, grant, by)
