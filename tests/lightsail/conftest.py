"""Lightsail fixtures: a real control plane (127.0.0.1, port 0) with the data-plane routes installed, an
instances file, and the signed-call helpers as fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightsail_helpers import INSTANCES_TOML, VALIDATION_DELAY, LightsailControl, read_events, signed_call

from lbproxy.core.clock import ManualClock


@pytest.fixture
def instances_file(tmp_path: Path) -> Path:
    path = tmp_path / "instances.toml"
    path.write_text(INSTANCES_TOML)
    return path


@pytest.fixture
def ls(tmp_path: Path, clock: ManualClock, instances_file: Path) -> Iterator[LightsailControl]:
    ct = LightsailControl(
        tmp_path / "data", clock=clock, validation_delay=VALIDATION_DELAY, instances_file=instances_file
    ).start()
    try:
        yield ct
    finally:
        ct.stop()


@pytest.fixture
def signed() -> Any:
    """``signed(url, principal, method, path, payload=None) -> (status, body)``."""
    return signed_call


@pytest.fixture
def events() -> Any:
    """``events(url, principal, after=0, want=1) -> [{"id", "type", "detail"}]``."""
    return read_events
