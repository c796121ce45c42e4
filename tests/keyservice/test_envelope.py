"""Envelope encryption on values: canonical AAD, blob format, tampering."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbproxy.keyservice import envelope

KEY_ID = str(uuid.uuid4())


def test_canonical_context_is_unambiguous() -> None:
    assert envelope.canonical_context({"a": "bc"}) != envelope.canonical_context({"ab": "c"})
    assert envelope.canonical_context({}) == envelope.canonical_context(None)
    assert envelope.canonical_context({"x": "1", "y": "2"}) == envelope.canonical_context({"y": "2", "x": "1"})


@given(st.dictionaries(st.text(), st.text(), max_size=4), st.dictionaries(st.text(), st.text(), max_size=4))
def test_canonical_context_injective(a: dict[str, str], b: dict[str, str]) -> None:
    assert (envelope.canonical_context(a) == envelope.canonical_context(b)) == (a == b)


def test_round_trip_and_context_binding() -> None:
    m = envelope.random_bytes(32)
    blob = envelope.seal(m, KEY_ID, 3, b"secret", {"a": "bc"})
    assert envelope.parse_header(blob) == envelope.BlobHeader(KEY_ID, 3)
    out = envelope.open_blob(m, blob, {"a": "bc"})
    assert isinstance(out, bytearray) and out == b"secret"
    for wrong in ({"ab": "c"}, {}, None, {"a": "bc", "x": "y"}):
        with pytest.raises(envelope.InvalidBlob):
            envelope.open_blob(m, blob, wrong)


def test_every_tampered_byte_fails() -> None:
    m = envelope.random_bytes(32)
    blob = envelope.seal(m, KEY_ID, 1, b"x" * 20, None)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(envelope.InvalidBlob):
            envelope.open_blob(m, bytes(bad), None)
    with pytest.raises(envelope.InvalidBlob):
        envelope.open_blob(m, blob[:-1], None)
    with pytest.raises(envelope.InvalidBlob):
        envelope.parse_header(b"short")


def test_material_wrapping_is_bound_to_key_and_version() -> None:
    root = envelope.random_bytes(32)
    material = envelope.random_bytes(32)
    wrapped = envelope.wrap_material(root, KEY_ID, 1, material)
    assert envelope.unwrap_material(root, KEY_ID, 1, wrapped) == material
    with pytest.raises(envelope.InvalidBlob):
        envelope.unwrap_material(root, KEY_ID, 2, wrapped)
    with pytest.raises(envelope.InvalidBlob):
        envelope.unwrap_material(root, str(uuid.uuid4()), 1, wrapped)


def test_wipe_zeroes() -> None:
    buf = bytearray(b"key material")
    envelope.wipe(buf)
    assert buf == bytearray(len(b"key material"))
