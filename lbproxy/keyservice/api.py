"""``TrentService.*`` on the wire: AWS JSON 1.1 request/response shapes for the key service.

Parameters arrive validated against botocore's KMS model (blobs as ``bytearray``). Each handler
records what the audit trail should say: the key, the grant used, the encryption context's keys
(never values, never plaintext). Plaintexts in responses are wiped once serialized.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbproxy.awsapi.errors import AwsError, ValidationException
from lbproxy.awsapi.protocol import Handler, RequestContext
from lbproxy.keyservice import envelope
from lbproxy.keyservice.crypto import refuse_recipient
from lbproxy.keyservice.service import SYMMETRIC_DEFAULT, KeyService

_KEY_SPEC_BYTES = {"AES_256": 32, "AES_128": 16}


class KmsApi:
    target_prefix = "TrentService"
    model_name = "kms"
    event_source = "kms.amazonaws.com"
    validation_error: type[AwsError] = ValidationException

    def __init__(self, service: KeyService) -> None:
        self.kms = service

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "CreateKey": self.create_key,
            "DescribeKey": self.describe_key,
            "ListKeys": self.list_keys,
            "EnableKey": self.enable_key,
            "DisableKey": self.disable_key,
            "ScheduleKeyDeletion": self.schedule_key_deletion,
            "CancelKeyDeletion": self.cancel_key_deletion,
            "CreateAlias": self.create_alias,
            "DeleteAlias": self.delete_alias,
            "ListAliases": self.list_aliases,
            "GetKeyPolicy": self.get_key_policy,
            "PutKeyPolicy": self.put_key_policy,
            "ListKeyPolicies": self.list_key_policies,
            "EnableKeyRotation": self.enable_key_rotation,
            "DisableKeyRotation": self.disable_key_rotation,
            "GetKeyRotationStatus": self.get_key_rotation_status,
            "Encrypt": self.encrypt,
            "Decrypt": self.decrypt,
            "ReEncrypt": self.re_encrypt,
            "GenerateDataKey": self.generate_data_key,
            "GenerateDataKeyWithoutPlaintext": self.generate_data_key_without_plaintext,
            "CreateGrant": self.create_grant,
            "ListGrants": self.list_grants,
            "ListRetirableGrants": self.list_retirable_grants,
            "RetireGrant": self.retire_grant,
            "RevokeGrant": self.revoke_grant,
            "UpdateAlias": self.update_alias,
            "UpdateKeyDescription": self.update_key_description,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListResourceTags": self.list_resource_tags,
            "GenerateRandom": self.generate_random,
            "GenerateDataKeyPair": self.generate_data_key_pair,
            "GenerateDataKeyPairWithoutPlaintext": self.generate_data_key_pair_without_plaintext,
            "Sign": self.sign,
            "Verify": self.verify,
            "GetPublicKey": self.get_public_key,
            "GenerateMac": self.generate_mac,
            "VerifyMac": self.verify_mac,
        }

    # ---------------------------------------------------------------- helpers

    def _note_key(self, ctx: RequestContext, key_id: str | None, **extra: Any) -> None:
        req = ctx.audit.setdefault("requestParameters", {})
        if key_id is not None:
            req["keyId"] = key_id
            try:
                arn = self.kms.key_arn(key_id)
                ctx.audit["resources"] = [{"ARN": arn, "type": "AWS::KMS::Key"}]
            except AwsError:
                pass
        req.update({k: v for k, v in extra.items() if v is not None})

    @staticmethod
    def _context_keys(context: Mapping[str, str] | None) -> list[str] | None:
        return sorted(context) if context else None

    # ---------------------------------------------------------------- keys

    def create_key(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        md = self.kms.create_key(
            ctx.principal,
            description=p.get("Description", ""),
            policy=p.get("Policy"),
            key_usage=p.get("KeyUsage"),
            key_spec=p.get("KeySpec"),
            customer_master_key_spec=p.get("CustomerMasterKeySpec"),
            origin=p.get("Origin", "AWS_KMS"),
            tags=p.get("Tags"),
            bypass_lockout_check=p.get("BypassPolicyLockoutSafetyCheck", False),
            multi_region=p.get("MultiRegion", False),
        )
        ctx.audit["responseElements"] = {"keyId": md["KeyId"]}
        ctx.audit["resources"] = [{"ARN": md["Arn"], "type": "AWS::KMS::Key"}]
        return {"KeyMetadata": md}

    def describe_key(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return {"KeyMetadata": self.kms.describe_key(ctx.principal, p["KeyId"], audit=ctx.audit)}

    def list_keys(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return self.kms.list_keys(ctx.principal, p.get("Limit", 100), p.get("Marker"))

    def enable_key(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        self.kms.enable_key(ctx.principal, p["KeyId"])
        return {}

    def disable_key(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        self.kms.disable_key(ctx.principal, p["KeyId"])
        return {}

    def schedule_key_deletion(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], pendingWindowInDays=p.get("PendingWindowInDays", 30))
        return self.kms.schedule_key_deletion(ctx.principal, p["KeyId"], p.get("PendingWindowInDays", 30))

    def cancel_key_deletion(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.cancel_key_deletion(ctx.principal, p["KeyId"])

    def create_alias(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["TargetKeyId"], aliasName=p["AliasName"])
        self.kms.create_alias(ctx.principal, p["AliasName"], p["TargetKeyId"])
        return {}

    def delete_alias(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, None, aliasName=p["AliasName"])
        self.kms.delete_alias(ctx.principal, p["AliasName"])
        return {}

    def list_aliases(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return self.kms.list_aliases(ctx.principal, p.get("KeyId"), p.get("Limit", 100), p.get("Marker"))

    def get_key_policy(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.get_key_policy(ctx.principal, p["KeyId"], p.get("PolicyName", "default"))

    def list_key_policies(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.list_key_policies(ctx.principal, p["KeyId"])

    def put_key_policy(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        self.kms.put_key_policy(
            ctx.principal,
            p["KeyId"],
            p["Policy"],
            p.get("PolicyName", "default"),
            p.get("BypassPolicyLockoutSafetyCheck", False),
        )
        return {}

    def enable_key_rotation(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        self.kms.enable_key_rotation(ctx.principal, p["KeyId"], p.get("RotationPeriodInDays"))
        return {}

    def disable_key_rotation(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        self.kms.disable_key_rotation(ctx.principal, p["KeyId"])
        return {}

    def get_key_rotation_status(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.get_key_rotation_status(ctx.principal, p["KeyId"])

    # ---------------------------------------------------------------- cryptography

    def encrypt(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        context = p.get("EncryptionContext")
        algorithm = p.get("EncryptionAlgorithm", SYMMETRIC_DEFAULT)
        self._note_key(
            ctx, p["KeyId"], encryptionContextKeys=self._context_keys(context), encryptionAlgorithm=algorithm
        )
        plaintext = p["Plaintext"]
        try:
            blob = self.kms.encrypt(
                ctx.principal, p["KeyId"], plaintext, context, ctx.audit, p.get("DryRun", False), algorithm
            )
        finally:
            envelope.wipe(plaintext)
        return {"CiphertextBlob": blob, "KeyId": self.kms.key_arn(p["KeyId"]), "EncryptionAlgorithm": algorithm}

    def decrypt(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        context = p.get("EncryptionContext")
        algorithm = p.get("EncryptionAlgorithm", SYMMETRIC_DEFAULT)
        self._note_key(
            ctx, p.get("KeyId"), encryptionContextKeys=self._context_keys(context), encryptionAlgorithm=algorithm
        )
        refuse_recipient(p.get("Recipient"))
        out = self.kms.decrypt(
            ctx.principal,
            p["CiphertextBlob"],
            context,
            p.get("KeyId"),
            ctx.audit,
            p.get("DryRun", False),
            algorithm=algorithm,
        )
        return {"KeyId": out.key_arn, "Plaintext": out.plaintext, "EncryptionAlgorithm": out.algorithm}

    def re_encrypt(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(
            ctx,
            p["DestinationKeyId"],
            sourceEncryptionContextKeys=self._context_keys(p.get("SourceEncryptionContext")),
            destinationEncryptionContextKeys=self._context_keys(p.get("DestinationEncryptionContext")),
        )
        return self.kms.re_encrypt(
            ctx.principal,
            p["CiphertextBlob"],
            p["DestinationKeyId"],
            p.get("SourceEncryptionContext"),
            p.get("DestinationEncryptionContext"),
            p.get("SourceKeyId"),
            ctx.audit,
            p.get("DryRun", False),
            p.get("SourceEncryptionAlgorithm", SYMMETRIC_DEFAULT),
            p.get("DestinationEncryptionAlgorithm", SYMMETRIC_DEFAULT),
        )

    def _data_key_size(self, p: dict[str, Any]) -> int:
        spec, n = p.get("KeySpec"), p.get("NumberOfBytes")
        if spec is not None and n is not None:
            raise ValidationException("Please specify either number of bytes or key spec.")
        if spec is None and n is None:
            raise ValidationException("Please specify either number of bytes or key spec.")
        return _KEY_SPEC_BYTES[spec] if spec is not None else int(n)  # type: ignore[arg-type]

    def generate_data_key(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        context = p.get("EncryptionContext")
        self._note_key(ctx, p["KeyId"], encryptionContextKeys=self._context_keys(context))
        size = self._data_key_size(p)
        dk = self.kms.generate_data_key(
            ctx.principal, p["KeyId"], context, number_of_bytes=size, audit=ctx.audit, dry_run=p.get("DryRun", False)
        )
        return {"CiphertextBlob": dk.ciphertext_blob, "Plaintext": dk.plaintext, "KeyId": dk.key_arn}

    def generate_data_key_without_plaintext(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        context = p.get("EncryptionContext")
        self._note_key(ctx, p["KeyId"], encryptionContextKeys=self._context_keys(context))
        size = self._data_key_size(p)
        dk = self.kms.generate_data_key(
            ctx.principal,
            p["KeyId"],
            context,
            number_of_bytes=size,
            audit=ctx.audit,
            action="GenerateDataKeyWithoutPlaintext",
            dry_run=p.get("DryRun", False),
        )
        envelope.wipe(dk.plaintext)
        return {"CiphertextBlob": dk.ciphertext_blob, "KeyId": dk.key_arn}

    # ---------------------------------------------------------------- grants

    def create_grant(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        constraints = p.get("Constraints")
        self._note_key(
            ctx,
            p["KeyId"],
            granteePrincipal=p["GranteePrincipal"],
            retiringPrincipal=p.get("RetiringPrincipal"),
            operations=p["Operations"],
            name=p.get("Name"),
            constraintKeys={k: sorted(v) for k, v in constraints.items()} if constraints else None,
        )
        grant_id, token = self.kms.create_grant(
            ctx.principal,
            p["KeyId"],
            p["GranteePrincipal"],
            p["Operations"],
            retiring_principal=p.get("RetiringPrincipal"),
            constraints=constraints,
            name=p.get("Name"),
            audit=ctx.audit,
            dry_run=p.get("DryRun", False),
        )
        return {"GrantToken": token, "GrantId": grant_id}

    def list_grants(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.list_grants(
            ctx.principal, p["KeyId"], p.get("GrantId"), p.get("GranteePrincipal"), p.get("Limit", 50), p.get("Marker")
        )

    def list_retirable_grants(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return self.kms.list_retirable_grants(
            ctx.principal, p["RetiringPrincipal"], p.get("Limit", 50), p.get("Marker")
        )

    def retire_grant(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("KeyId"):
            self._note_key(ctx, p["KeyId"], grantId=p.get("GrantId"))
        self.kms.retire_grant(
            ctx.principal,
            key_id=p.get("KeyId"),
            grant_id=p.get("GrantId"),
            grant_token=p.get("GrantToken"),
            audit=ctx.audit,
            dry_run=p.get("DryRun", False),
        )
        return {}

    def revoke_grant(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], grantId=p["GrantId"])
        self.kms.revoke_grant(ctx.principal, p["KeyId"], p["GrantId"], ctx.audit, p.get("DryRun", False))
        return {}

    # ---------------------------------------------------------------- aliases, descriptions, tags

    def update_alias(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["TargetKeyId"], aliasName=p["AliasName"])
        self.kms.update_alias(ctx.principal, p["AliasName"], p["TargetKeyId"])
        return {}

    def update_key_description(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], description=p["Description"])
        self.kms.update_key_description(ctx.principal, p["KeyId"], p["Description"])
        return {}

    def tag_resource(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], tags=p["Tags"])
        self.kms.tag_resource(ctx.principal, p["KeyId"], p["Tags"])
        return {}

    def untag_resource(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], tagKeys=p["TagKeys"])
        self.kms.untag_resource(ctx.principal, p["KeyId"], p["TagKeys"])
        return {}

    def list_resource_tags(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.list_resource_tags(ctx.principal, p["KeyId"], p.get("Limit", 50), p.get("Marker"))

    # ---------------------------------------------------------------- random bytes and data key pairs

    def generate_random(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        ctx.audit["requestParameters"] = {"numberOfBytes": p.get("NumberOfBytes")}
        refuse_recipient(p.get("Recipient"))
        random = self.kms.generate_random(ctx.principal, p.get("NumberOfBytes"), p.get("CustomKeyStoreId"))
        return {"Plaintext": random}

    def _data_key_pair(self, ctx: RequestContext, p: dict[str, Any], action: str) -> Any:
        context = p.get("EncryptionContext")
        self._note_key(ctx, p["KeyId"], keyPairSpec=p["KeyPairSpec"], encryptionContextKeys=self._context_keys(context))
        refuse_recipient(p.get("Recipient"))
        return self.kms.generate_data_key_pair(
            ctx.principal,
            p["KeyId"],
            p["KeyPairSpec"],
            context,
            audit=ctx.audit,
            action=action,
            dry_run=p.get("DryRun", False),
        )

    def generate_data_key_pair(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        pair = self._data_key_pair(ctx, p, "GenerateDataKeyPair")
        return {
            "PrivateKeyCiphertextBlob": pair.private_ciphertext_blob,
            "PrivateKeyPlaintext": pair.private_plaintext,  # a bytearray: wiped once serialized
            "PublicKey": pair.public_key,
            "KeyId": pair.key_arn,
            "KeyPairSpec": pair.key_pair_spec,
        }

    def generate_data_key_pair_without_plaintext(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        pair = self._data_key_pair(ctx, p, "GenerateDataKeyPairWithoutPlaintext")
        envelope.wipe(pair.private_plaintext)
        return {
            "PrivateKeyCiphertextBlob": pair.private_ciphertext_blob,
            "PublicKey": pair.public_key,
            "KeyId": pair.key_arn,
            "KeyPairSpec": pair.key_pair_spec,
        }

    # ---------------------------------------------------------------- signatures and MACs

    def sign(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        message_type = p.get("MessageType", "RAW")
        self._note_key(ctx, p["KeyId"], signingAlgorithm=p["SigningAlgorithm"], messageType=message_type)
        try:
            return self.kms.sign(
                ctx.principal,
                p["KeyId"],
                p["Message"],
                p["SigningAlgorithm"],
                message_type,
                audit=ctx.audit,
                dry_run=p.get("DryRun", False),
            )
        finally:
            envelope.wipe(p["Message"])

    def verify(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        message_type = p.get("MessageType", "RAW")
        self._note_key(ctx, p["KeyId"], signingAlgorithm=p["SigningAlgorithm"], messageType=message_type)
        try:
            return self.kms.verify(
                ctx.principal,
                p["KeyId"],
                p["Message"],
                p["Signature"],
                p["SigningAlgorithm"],
                message_type,
                audit=ctx.audit,
                dry_run=p.get("DryRun", False),
            )
        finally:
            envelope.wipe(p["Message"])

    def get_public_key(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"])
        return self.kms.get_public_key(ctx.principal, p["KeyId"], audit=ctx.audit)

    def generate_mac(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], macAlgorithm=p["MacAlgorithm"])
        try:
            return self.kms.generate_mac(
                ctx.principal,
                p["KeyId"],
                p["Message"],
                p["MacAlgorithm"],
                audit=ctx.audit,
                dry_run=p.get("DryRun", False),
            )
        finally:
            envelope.wipe(p["Message"])

    def verify_mac(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._note_key(ctx, p["KeyId"], macAlgorithm=p["MacAlgorithm"])
        try:
            return self.kms.verify_mac(
                ctx.principal,
                p["KeyId"],
                p["Message"],
                p["Mac"],
                p["MacAlgorithm"],
                audit=ctx.audit,
                dry_run=p.get("DryRun", False),
            )
        finally:
            envelope.wipe(p["Message"])
