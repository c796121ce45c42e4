from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, make_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = make_stack(tmp_path)
    try:
        yield s
    finally:
        s.stop()
        with contextlib.suppress(Exception):
            s.control.stop()
