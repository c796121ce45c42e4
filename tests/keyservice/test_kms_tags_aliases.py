"""KMS tags, UpdateAlias, UpdateKeyDescription, GenerateRandom and ScheduleKeyDeletion's bounds, with boto3 over a
real socket; and a few of them with the AWS CLI."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from awserrors import code, message
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread


@pytest.fixture
def kms(control: ControlThread) -> Any:
    return control.client("kms")


@pytest.fixture
def role(control: ControlThread) -> Principal:
    assert control.plane is not None
    return control.call(lambda: control.plane.principals.ensure_role("lb-tags"))  # type: ignore[union-attr]


def tag(k: str, v: str = "v") -> dict[str, str]:
    return {"TagKey": k, "TagValue": v}


def test_tags_from_create_key_on(kms: Any, role: Principal, control: ControlThread) -> None:
    key_id = kms.create_key(Tags=[tag("env", "prod"), tag("team", "")])["KeyMetadata"]["KeyId"]
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [tag("env", "prod"), tag("team", "")]
    kms.tag_resource(KeyId=key_id, Tags=[tag("env", "dev"), tag("app", "web")])  # replaces, adds
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [tag("env", "dev"), tag("team", ""), tag("app", "web")]
    kms.untag_resource(KeyId=key_id, TagKeys=["team", "not-there"])  # a missing key is no error
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [tag("env", "dev"), tag("app", "web")]
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    assert kms.list_resource_tags(KeyId=arn)["Tags"] == [tag("env", "dev"), tag("app", "web")]

    # The rules: aws: is reserved, 50 tags at most, a key named once per request, the model's lengths.
    for bad in ([tag("aws:owner")], [tag("AWS:owner")], [tag("a"), tag("a", "w")]):
        with pytest.raises(ClientError) as e:
            kms.tag_resource(KeyId=key_id, Tags=bad)
        assert code(e) == "TagException"
    with pytest.raises(ClientError) as e:
        kms.tag_resource(KeyId=key_id, Tags=[tag("aws:owner")])
    assert message(e) == "Tags beginning with aws: are reserved"
    with pytest.raises(ClientError) as e:
        kms.untag_resource(KeyId=key_id, TagKeys=["aws:cloudformation:stack-name"])
    assert code(e) == "TagException"
    with pytest.raises(ClientError) as e:
        kms.create_key(Tags=[tag("aws:x")])
    assert code(e) == "TagException"
    with pytest.raises(ClientError) as e:
        kms.create_key(Tags=[tag(f"k{i}") for i in range(51)])
    assert (code(e), message(e)) == ("TagException", "Too many tags")
    kms.tag_resource(KeyId=key_id, Tags=[tag(f"k{i}") for i in range(48)])  # 2 + 48 = 50
    with pytest.raises(ClientError) as e:
        kms.tag_resource(KeyId=key_id, Tags=[tag("one-more")])
    assert code(e) == "TagException"
    kms.tag_resource(KeyId=key_id, Tags=[tag("k0", "changed")])  # replacing is not adding
    for bad in ([tag("x" * 129)], [tag("k", "v" * 257)]):  # (botocore itself refuses an empty key)
        with pytest.raises(ClientError) as e:
            kms.tag_resource(KeyId=key_id, Tags=bad)
        assert code(e) == "ValidationException"

    # Pages of at most 50 (ListResourceTags' documented maximum), with a marker.
    first = kms.list_resource_tags(KeyId=key_id, Limit=20)
    assert len(first["Tags"]) == 20 and first["Truncated"] is True
    rest = kms.list_resource_tags(KeyId=key_id, Limit=1000, Marker=first["NextMarker"])
    assert len(rest["Tags"]) == 30 and rest["Truncated"] is False
    assert len(kms.get_paginator("list_resource_tags").paginate(KeyId=key_id).build_full_result()["Tags"]) == 50

    # Permission through the key policy; AWS managed keys cannot be tagged; nor a key pending deletion.
    lb = control.client("kms", role)
    for call in (
        lambda: lb.tag_resource(KeyId=key_id, Tags=[tag("x")]),
        lambda: lb.untag_resource(KeyId=key_id, TagKeys=["env"]),
        lambda: lb.list_resource_tags(KeyId=key_id),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        kms.tag_resource(KeyId="alias/aws/acm", Tags=[tag("x")])
    assert code(e) == "AccessDeniedException"
    assert kms.list_resource_tags(KeyId="alias/aws/acm")["Tags"] == []
    kms.disable_key(KeyId=key_id)
    kms.untag_resource(KeyId=key_id, TagKeys=["k47"])
    kms.tag_resource(KeyId=key_id, Tags=[tag("disabled", "fine")])  # a disabled key takes tags
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.tag_resource(KeyId=key_id, Tags=[tag("late")])
    assert code(e) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as e:
        kms.untag_resource(KeyId=key_id, TagKeys=["env"])
    assert code(e) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as e:
        kms.list_resource_tags(KeyId="alias/none")
    assert code(e) == "NotFoundException"


def test_update_alias(kms: Any, role: Principal, control: ControlThread) -> None:
    a = kms.create_key()["KeyMetadata"]["KeyId"]
    b = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=a)
    blob = kms.encrypt(KeyId="alias/app", Plaintext=b"before")["CiphertextBlob"]
    kms.update_alias(AliasName="alias/app", TargetKeyId=b)
    assert kms.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"] == b
    (alias,) = [x for x in kms.list_aliases()["Aliases"] if x["AliasName"] == "alias/app"]
    assert alias["TargetKeyId"] == b and alias["LastUpdatedDate"] >= alias["CreationDate"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"  # old ciphertexts name their own key

    rsa_sign = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    ecc_sign = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    rsa_enc = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    for target in (rsa_sign, rsa_enc, mac):  # another type of key, or another key usage
        with pytest.raises(ClientError) as e:
            kms.update_alias(AliasName="alias/app", TargetKeyId=target)
        assert code(e) == "ValidationException"
    kms.create_alias(AliasName="alias/signer", TargetKeyId=rsa_sign)
    kms.update_alias(AliasName="alias/signer", TargetKeyId=ecc_sign)  # both asymmetric SIGN_VERIFY: fine
    with pytest.raises(ClientError) as e:
        kms.update_alias(AliasName="alias/signer", TargetKeyId=rsa_enc)
    assert code(e) == "ValidationException"

    for alias_name, target, expect in [
        ("alias/none", b, "NotFoundException"),
        ("alias/app", "alias/aws/acm", "AccessDeniedException"),  # "You don't have permission" (AWS managed key)
        ("alias/aws/acm", b, "InvalidAliasNameException"),  # nor move an AWS managed key's alias
        ("alias/app", "00000000-0000-0000-0000-000000000000", "NotFoundException"),
    ]:
        with pytest.raises(ClientError) as e:
            kms.update_alias(AliasName=alias_name, TargetKeyId=target)
        assert code(e) == expect, (alias_name, target)
    with pytest.raises(ClientError) as e:
        control.client("kms", role).update_alias(AliasName="alias/app", TargetKeyId=a)
    assert code(e) == "AccessDeniedException"
    kms.schedule_key_deletion(KeyId=a, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.update_alias(AliasName="alias/app", TargetKeyId=a)
    assert code(e) == "KMSInvalidStateException"


def test_update_key_description(kms: Any, role: Principal, control: ControlThread) -> None:
    key_id = kms.create_key(Description="old")["KeyMetadata"]["KeyId"]
    kms.update_key_description(KeyId=key_id, Description="new")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "new"
    kms.update_key_description(KeyId=key_id, Description="")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""
    with pytest.raises(ClientError) as e:
        kms.update_key_description(KeyId="alias/aws/acm", Description="mine now")
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        control.client("kms", role).update_key_description(KeyId=key_id, Description="x")
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        kms.update_key_description(KeyId="00000000-0000-0000-0000-000000000000", Description="x")
    assert code(e) == "NotFoundException"
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.update_key_description(KeyId=key_id, Description="late")
    assert code(e) == "KMSInvalidStateException"


def test_list_key_policies(kms: Any, role: Principal, control: ControlThread) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    out = kms.list_key_policies(KeyId=key_id)
    assert (out["PolicyNames"], out["Truncated"]) == (["default"], False)
    assert kms.list_key_policies(KeyId="alias/aws/acm")["PolicyNames"] == ["default"]  # the account may List*
    with pytest.raises(ClientError) as e:
        control.client("kms", role).list_key_policies(KeyId=key_id)
    assert code(e) == "AccessDeniedException"


def test_pending_window_is_7_to_30_days(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    low, high = "greater than or equal to 7", "less than or equal to 30"
    for days, bound in ((6, low), (1, low), (31, high), (365, high)):
        with pytest.raises(ClientError) as e:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=days)
        assert code(e) == "ValidationException"
        assert message(e) == (
            f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: "
            f"Member must have value {bound}"
        )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)["PendingWindowInDays"] == 30
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.schedule_key_deletion(KeyId=key_id)["PendingWindowInDays"] == 30  # the default


def test_generate_random(kms: Any, role: Principal, control: ControlThread) -> None:
    one, two = (kms.generate_random(NumberOfBytes=32)["Plaintext"] for _ in range(2))
    assert len(one) == len(two) == 32 and one != two
    assert len(kms.generate_random(NumberOfBytes=1024)["Plaintext"]) == 1024
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "ValidationException"),  # "This parameter is required."
        ({"NumberOfBytes": 1025}, "ValidationException"),
        ({"NumberOfBytes": 8, "CustomKeyStoreId": "cks-1234567890abcdef0"}, "CustomKeyStoreNotFoundException"),
    ]
    for args, expect in cases:
        with pytest.raises(ClientError) as e:
            kms.generate_random(**args)
        assert code(e) == expect, args
    with pytest.raises(ClientError) as e:  # an IAM permission: roles have none
        control.client("kms", role).generate_random(NumberOfBytes=8)
    assert code(e) == "AccessDeniedException"
    records = [json.loads(x) for x in (control.settings.data_dir / "audit.jsonl").read_text().splitlines()]
    text = json.dumps(records)
    for secret in (one, two):
        assert base64.b64encode(secret).decode() not in text and secret.hex() not in text


def test_the_aws_cli_signs_tags_and_describes(control: ControlThread, tmp_path: Path) -> None:
    """The AWS CLI, as a user runs it, for a few of the new operations."""
    aws = shutil.which("aws")
    assert aws is not None, "the AWS CLI is part of the test extra (awscli)"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": control.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": control.admin.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }

    def cli(*args: str) -> Any:
        out = subprocess.run(
            [aws, "--endpoint-url", control.url, "--output", "json", "kms", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else None

    kms = control.client("kms")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    (tmp_path / "message").write_bytes(b"from the cli")  # fileb:// is raw bytes in AWS CLI v1 and v2 alike
    signed = cli(
        "sign", "--key-id", key_id, "--message", f"fileb://{tmp_path / 'message'}", "--signing-algorithm",
        "ECDSA_SHA_256",
    )  # fmt: skip
    public = serialization.load_der_public_key(base64.b64decode(cli("get-public-key", "--key-id", key_id)["PublicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(signed["Signature"]), b"from the cli", ec.ECDSA(hashes.SHA256()))
    cli("tag-resource", "--key-id", key_id, "--tags", "TagKey=env,TagValue=cli")
    assert cli("list-resource-tags", "--key-id", key_id)["Tags"] == [{"TagKey": "env", "TagValue": "cli"}]
