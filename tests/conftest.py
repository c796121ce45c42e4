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


#: Whole-product tests (processes started from the command line, a real browser, the JavaScript SDK, a Docker
#: engine): marked ``slow``, so ``python -m pytest -m "not slow"`` is the quick loop while changing code.
_SLOW = ("e2e/", "demo/", "sdk/", "dashboard/test_dashboard_browser.py", "control/test_abuse.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        where = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
        if where.startswith(_SLOW) or where in _SLOW:
            item.add_marker(pytest.mark.slow)
