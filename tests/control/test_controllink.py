"""The data plane's control link against a real control plane: signed calls, Decrypt, resumable events."""

from __future__ import annotations

import asyncio

import pytest
from botocore.credentials import ReadOnlyCredentials

from lbproxy.core.principals import Principal
from lbproxy.proxy.controllink import ControlClient, ControlError, Signer
from lbproxy.proxy.eventstream import EventSubscription
from lbproxy.testing import ControlThread


def signer_for(p: Principal) -> Signer:
    return Signer(ReadOnlyCredentials(p.access_key_id, p.secret_access_key, None), "us-east-1")


def test_decrypt_through_a_grant_then_denied(control: ControlThread) -> None:
    kms = control.client("kms")
    role = control.call(lambda: control.plane.principals.ensure_role("link"))  # type: ignore[union-attr]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"aws:acm:arn": "c", "aws:lightsail:arn": "l"}
    dk = kms.generate_data_key(KeyId=key_id, NumberOfBytes=32, EncryptionContext=ctx)
    g = kms.create_grant(
        KeyId=key_id, GranteePrincipal=role.arn, Operations=["Decrypt"], Constraints={"EncryptionContextEquals": ctx}
    )
    client = ControlClient(control.url, signer_for(role))
    out = client.decrypt_data_key(dk["CiphertextBlob"], ctx, [g["GrantToken"]])
    assert isinstance(out, bytearray) and out == dk["Plaintext"]
    with pytest.raises(ControlError) as e:
        client.decrypt_data_key(dk["CiphertextBlob"], {"aws:acm:arn": "c"})
    assert e.value.code == "AccessDeniedException"
    kms.revoke_grant(KeyId=key_id, GrantId=g["GrantId"])
    with pytest.raises(ControlError) as e:
        client.decrypt_data_key(dk["CiphertextBlob"], ctx)
    assert e.value.code == "AccessDeniedException"


def test_unreachable_control_plane_is_a_control_error() -> None:
    client = ControlClient("http://127.0.0.1:9", signer_for(Principal("x", "a", "AKIA", "s", "role")), timeout=2)
    with pytest.raises(ControlError) as e:
        client.get_json("/healthz")
    assert e.value.code == "Unreachable"


async def test_event_subscription_resumes_after_disconnect(control: ControlThread) -> None:
    kms = control.client("kms")
    role = control.call(lambda: control.plane.principals.ensure_role("link2"))  # type: ignore[union-attr]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    sub = EventSubscription(control.url, signer_for(role), min_backoff=0.05, max_backoff=0.2)
    got: list[str] = []

    async def consume(n: int) -> None:
        async for ev in sub:
            got.append(ev.type)
            if len(got) >= n:
                return

    g = await asyncio.to_thread(kms.create_grant, KeyId=key_id, GranteePrincipal=role.arn, Operations=["Decrypt"])
    await asyncio.wait_for(consume(1), 10)
    # Disconnected (the iterator was closed); changes happen meanwhile; a new iteration resumes from last_id.
    await asyncio.to_thread(kms.disable_key, KeyId=key_id)
    await asyncio.to_thread(kms.revoke_grant, KeyId=key_id, GrantId=g["GrantId"])
    await asyncio.wait_for(consume(3), 10)
    assert got == ["grant.created", "key.disabled", "grant.revoked"]
