from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compose: docker-compose.yml on a real Docker engine (.ci/compose-engine; skipped without it)"
    )
