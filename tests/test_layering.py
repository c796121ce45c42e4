"""The package layering of ``lbproxy`` holds (import-linter's contracts in pyproject.toml): the control process
over the services over the wire toolkit, core, contract and config; the data plane imports nothing but
itself, the contract and config; the contract imports nothing else of lbproxy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    command = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_module_over_700_lines() -> None:
    """A module a newcomer can read: none in lbproxy/ is over 700 lines (split it the way its package is split)."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "lbproxy").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 700
    }
    assert not long, long
