"""The key service driven with boto3 over a real socket, as a user would."""

from __future__ import annotations

import base64
import json

import pytest
from awserrors import code
from botocore.exceptions import ClientError

from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread


@pytest.fixture
def kms(control: ControlThread):  # type: ignore[no-untyped-def]
    return control.client("kms")


@pytest.fixture
def role(control: ControlThread) -> Principal:
    assert control.plane is not None
    return control.call(lambda: control.plane.principals.ensure_role("lb-test"))  # type: ignore[union-attr]


def test_key_lifecycle(kms) -> None:  # type: ignore[no-untyped-def]
    md = kms.create_key(Description="demo", Tags=[{"TagKey": "k", "TagValue": "v"}])["KeyMetadata"]
    key_id = md["KeyId"]
    assert md["KeyState"] == "Enabled" and md["KeyManager"] == "CUSTOMER" and md["Arn"].endswith(key_id)
    assert md["KeySpec"] == "SYMMETRIC_DEFAULT" and md["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert key_id in [k["KeyId"] for k in kms.list_keys()["Keys"]]

    kms.create_alias(AliasName="alias/demo", TargetKeyId=key_id)
    assert kms.describe_key(KeyId="alias/demo")["KeyMetadata"]["KeyId"] == key_id
    assert kms.describe_key(KeyId=md["Arn"])["KeyMetadata"]["KeyId"] == key_id
    aliases = {a["AliasName"]: a for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/demo"]["TargetKeyId"] == key_id and "alias/aws/acm" in aliases
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == ["alias/demo"]
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/demo", TargetKeyId=key_id)
    assert code(e) == "AlreadyExistsException"
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=key_id)
    assert code(e) == "InvalidAliasNameException"

    kms.disable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code(e) == "DisabledException"
    kms.enable_key(KeyId=key_id)

    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90

    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::000000000000:root"}

    out = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code(e) == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.delete_alias(AliasName="alias/demo")
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="alias/demo")
    assert code(e) == "NotFoundException"


def test_scheduled_deletion_happens_when_the_clock_says(control: ControlThread, kms, clock) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    clock.advance(days=8)
    control.call(control.plane.tick)  # type: ignore[union-attr]
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=key_id)
    assert code(e) == "NotFoundException"


def test_envelope_round_trip_and_context(kms) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"a": "bc"})
    assert len(dk["Plaintext"]) == 32
    out = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"a": "bc"})
    assert out["Plaintext"] == dk["Plaintext"] and out["KeyId"].endswith(key_id)
    for wrong in ({"ab": "c"}, {}):
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=wrong)
        assert code(e) == "InvalidCiphertextException"
    tampered = bytearray(dk["CiphertextBlob"])
    tampered[-1] ^= 1
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=bytes(tampered), EncryptionContext={"a": "bc"})
    assert code(e) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=b"garbage" * 10)
    assert code(e) == "InvalidCiphertextException"

    no_pt = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    assert "Plaintext" not in no_pt
    assert len(kms.decrypt(CiphertextBlob=no_pt["CiphertextBlob"])["Plaintext"]) == 16
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=key_id)
    assert code(e) == "ValidationException"

    enc = kms.encrypt(KeyId=key_id, Plaintext=b"hello", EncryptionContext={"x": "y"})
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], KeyId=other, EncryptionContext={"x": "y"})
    assert code(e) == "IncorrectKeyException"
    re = kms.re_encrypt(
        CiphertextBlob=enc["CiphertextBlob"],
        SourceEncryptionContext={"x": "y"},
        DestinationKeyId=other,
        DestinationEncryptionContext={"z": "w"},
    )
    assert re["KeyId"].endswith(other) and re["SourceKeyId"].endswith(key_id)
    assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"z": "w"})["Plaintext"] == b"hello"


def test_rotation_keeps_old_ciphertexts_decryptable(control: ControlThread, kms, clock) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    before = kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    clock.advance(days=91)
    control.call(control.plane.tick)  # type: ignore[union-attr]
    after = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    assert before[40:44] != after[40:44]  # material version in the blob header
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"old"
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"new"


def test_grants_equals_constraint_and_revoke(control: ControlThread, kms, role: Principal) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"aws:acm:arn": "arn:cert", "aws:lightsail:arn": "arn:lb"}
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"private", EncryptionContext=ctx)["CiphertextBlob"]
    lb = control.client("kms", role)

    with pytest.raises(ClientError) as e:
        lb.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    assert code(e) == "AccessDeniedException"
    assert f"User: {role.arn} is not authorized to perform: kms:Decrypt" in e.value.response["Error"]["Message"]

    g = kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=role.arn,
        Operations=["Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextEquals": ctx},
        Name="IssuedThroughACM",
    )
    again = kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=role.arn,
        Operations=["Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextEquals": ctx},
        Name="IssuedThroughACM",
    )
    assert again["GrantId"] == g["GrantId"]
    grants = kms.list_grants(KeyId=key_id)["Grants"]
    assert len(grants) == 1
    assert grants[0]["Constraints"] == {"EncryptionContextEquals": ctx}
    assert grants[0]["GranteePrincipal"] == role.arn and grants[0]["Name"] == "IssuedThroughACM"

    assert (
        lb.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, GrantTokens=[g["GrantToken"]])["Plaintext"] == b"private"
    )
    assert lb.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id  # constraints not applied
    with pytest.raises(ClientError) as e:
        lb.decrypt(CiphertextBlob=blob, EncryptionContext={"aws:acm:arn": "arn:cert"})
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        lb.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext=ctx)
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:  # the grantee may not revoke, nor retire without RetireGrant
        lb.revoke_grant(KeyId=key_id, GrantId=g["GrantId"])
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        lb.retire_grant(KeyId=key_id, GrantId=g["GrantId"])
    assert code(e) == "AccessDeniedException"

    kms.revoke_grant(KeyId=key_id, GrantId=g["GrantId"])
    assert kms.list_grants(KeyId=key_id)["Grants"] == []
    with pytest.raises(ClientError) as e:
        lb.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        kms.revoke_grant(KeyId=key_id, GrantId=g["GrantId"])
    assert code(e) == "NotFoundException"


def test_grants_subset_constraint_and_retire(control: ControlThread, kms, role: Principal) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    lb = control.client("kms", role)
    g = kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=role.arn,
        RetiringPrincipal=role.arn,
        Operations=["Encrypt", "Decrypt", "GenerateDataKey"],
        Constraints={"EncryptionContextSubset": {"app": "web"}},
    )
    blob = lb.encrypt(KeyId=key_id, Plaintext=b"v", EncryptionContext={"app": "web", "extra": "1"})["CiphertextBlob"]
    assert lb.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "web", "extra": "1"})["Plaintext"] == b"v"
    with pytest.raises(ClientError) as e:
        lb.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"app": "db"})
    assert code(e) == "AccessDeniedException"
    retirable = kms.list_retirable_grants(RetiringPrincipal=role.arn)["Grants"]
    assert [r["GrantId"] for r in retirable] == [g["GrantId"]]
    lb.retire_grant(GrantToken=g["GrantToken"])
    with pytest.raises(ClientError) as e:
        lb.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "web", "extra": "1"})
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        lb.retire_grant(GrantToken=g["GrantToken"])
    assert code(e) == "InvalidGrantTokenException"


def test_principal_without_grant_is_denied_everything(control: ControlThread, kms, role: Principal) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    lb = control.client("kms", role)
    for call in (
        lambda: lb.describe_key(KeyId=key_id),
        lambda: lb.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: lb.list_grants(KeyId=key_id),
        lambda: lb.create_grant(KeyId=key_id, GranteePrincipal=role.arn, Operations=["Decrypt"]),
        lambda: lb.list_keys(),
        lambda: lb.create_key(),
        lambda: lb.disable_key(KeyId=key_id),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "AccessDeniedException"


def test_acm_key_is_usable_only_through_acm_or_grants(control: ControlThread, kms) -> None:  # type: ignore[no-untyped-def]
    md = kms.describe_key(KeyId="alias/aws/acm")["KeyMetadata"]
    assert md["KeyManager"] == "AWS"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId="alias/aws/acm", KeySpec="AES_256")
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        kms.disable_key(KeyId="alias/aws/acm")
    assert code(e) == "AccessDeniedException"
    assert kms.get_key_rotation_status(KeyId="alias/aws/acm")["KeyRotationEnabled"] is True
    # The ACM service principal (inside the control plane) can.
    from lbproxy.core.principals import ACM_PRINCIPAL

    dk = control.call(
        lambda: control.plane.kms.generate_data_key(  # type: ignore[union-attr]
            ACM_PRINCIPAL, "alias/aws/acm", {"aws:acm:arn": "arn:x"}
        )
    )
    assert isinstance(dk.plaintext, bytearray) and len(dk.plaintext) == 32


def test_put_key_policy_grants_a_role_and_lockout_check(control: ControlThread, kms, role: Principal) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    lockout = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": role.arn}, "Action": "kms:Decrypt", "Resource": "*"}],
    }
    with pytest.raises(ClientError) as e:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(lockout))
    assert code(e) == "MalformedPolicyDocumentException"
    with pytest.raises(ClientError) as e:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="{not json")
    assert code(e) == "MalformedPolicyDocumentException"
    ok = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": role.arn},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
            },
        ],
    }
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(ok))
    lb = control.client("kms", role)
    blob = lb.encrypt(KeyId=key_id, Plaintext=b"p")["CiphertextBlob"]
    assert lb.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"
    with pytest.raises(ClientError) as e:
        lb.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert code(e) == "AccessDeniedException"


def test_restart_keeps_everything(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    ct = ControlThread(tmp_path / "d", clock=clock).start()
    try:
        kms = ct.client("kms")
        key_id = kms.create_key(Description="persist")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/persist", TargetKeyId=key_id)
        role = ct.call(lambda: ct.plane.principals.ensure_role("r1"))  # type: ignore[union-attr]
        g = kms.create_grant(KeyId=key_id, GranteePrincipal=role.arn, Operations=["Decrypt"])
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept", EncryptionContext={"c": "1"})["CiphertextBlob"]
        admin = ct.admin
    finally:
        ct.stop()
    ct2 = ControlThread(tmp_path / "d", clock=clock).start()
    try:
        assert ct2.admin == admin
        kms = ct2.client("kms")
        assert kms.describe_key(KeyId="alias/persist")["KeyMetadata"]["Description"] == "persist"
        assert [x["GrantId"] for x in kms.list_grants(KeyId=key_id)["Grants"]] == [g["GrantId"]]
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"c": "1"})["Plaintext"] == b"kept"
        role2 = ct2.call(lambda: ct2.plane.principals.get("r1"))  # type: ignore[union-attr]
        assert (
            ct2.client("kms", role2).decrypt(CiphertextBlob=blob, EncryptionContext={"c": "1"})["Plaintext"] == b"kept"
        )
    finally:
        ct2.stop()


def test_audit_trail_records_calls_without_key_material(control: ControlThread, kms, role: Principal) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"purpose": "audit-test"}
    dk = kms.generate_data_key(KeyId=key_id, NumberOfBytes=32, EncryptionContext=ctx)
    g = kms.create_grant(
        KeyId=key_id, GranteePrincipal=role.arn, Operations=["Decrypt"], Constraints={"EncryptionContextEquals": ctx}
    )
    control.client("kms", role).decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)
    with pytest.raises(ClientError):
        control.client("kms", role).decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={})
    path = control.settings.data_dir / "audit.jsonl"
    text = path.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    decrypts = [r for r in records if r["eventName"] == "Decrypt"]
    assert decrypts[0]["userIdentity"]["arn"] == role.arn
    assert decrypts[0]["additionalEventData"]["grantId"] == g["GrantId"]
    assert decrypts[0]["requestParameters"]["encryptionContextKeys"] == ["purpose"]
    assert decrypts[0]["resources"][0]["ARN"].endswith(key_id)
    assert decrypts[1]["errorCode"] == "AccessDeniedException"
    gen = next(r for r in records if r["eventName"] == "GenerateDataKey")
    assert gen["userIdentity"]["arn"] == control.admin.arn and "errorCode" not in gen
    plaintext = dk["Plaintext"]
    for form in (plaintext, base64.b64encode(plaintext), plaintext.hex().encode()):
        assert form not in path.read_bytes()
    assert "audit-test" not in text  # context values are not logged, only keys


def test_data_dir_holds_no_plaintext_data_keys(control: ControlThread, kms) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    plaintexts = [kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"] for _ in range(3)]
    blobs = b"".join(p.read_bytes() for p in control.settings.data_dir.rglob("*") if p.is_file())
    for pt in plaintexts:
        assert pt not in blobs and base64.b64encode(pt) not in blobs
    creds = control.settings.data_dir / "credentials"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert (control.settings.data_dir / "root.key").stat().st_mode & 0o777 == 0o600
