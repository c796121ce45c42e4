"""Certificate-manager fixtures: a real control plane (127.0.0.1, port 0) with its ACM.

``acm_control`` waits ``VALIDATION_DELAY`` seconds of *injected* time before certificates leave
PENDING_VALIDATION, so tests see both states and move the clock themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lbproxy.certs.manager import CertificateManager
from lbproxy.core.clock import ManualClock
from lbproxy.testing import ControlThread

VALIDATION_DELAY = 5.0


@pytest.fixture
def acm_control(tmp_path: Path, clock: ManualClock) -> Iterator[ControlThread]:
    ct = ControlThread(tmp_path / "data", clock=clock, validation_delay=VALIDATION_DELAY).start()
    try:
        yield ct
    finally:
        if ct._thread.is_alive():  # a test may have stopped it to look at the files at rest
            ct.stop()


@pytest.fixture
def manager(acm_control: ControlThread) -> CertificateManager:
    assert acm_control.plane is not None
    return acm_control.plane.acm


@pytest.fixture
def acm(acm_control: ControlThread) -> Any:
    return acm_control.client("acm")


@pytest.fixture
def issue(acm: Any, clock: ManualClock) -> Callable[..., str]:
    """Request a certificate and move the clock past validation: returns its ARN, ISSUED."""

    def run(domain: str = "www.example.com", **kw: Any) -> str:
        arn = acm.request_certificate(DomainName=domain, **kw)["CertificateArn"]
        clock.advance(seconds=VALIDATION_DELAY + 1)
        assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
        return str(arn)

    return run
