"""Shared fixtures: a real control plane on 127.0.0.1 (port 0) with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lbproxy.core.clock import ManualClock
from lbproxy.testing import ControlThread


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def control(tmp_path: Path, clock: ManualClock) -> Iterator[ControlThread]:
    ct = ControlThread(tmp_path / "data", clock=clock, validation_delay=0.0).start()
    try:
        yield ct
    finally:
        ct.stop()
