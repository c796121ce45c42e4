"""TEST ONLY: a key source whose control plane is always unreachable (``keys.KeyUnavailable``).

Imported by worker processes through ``PYTHONPATH`` (the tests add this folder)."""

from __future__ import annotations

from lbproxy.proxy.keys import KeyUnavailable


class UnavailableKeySource:
    __test__ = False

    def load(self) -> None:
        raise KeyUnavailable("the control plane cannot be reached (test)")
