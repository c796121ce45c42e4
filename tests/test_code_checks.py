"""The code stays as the checkers want it: ruff's lint and format, and mypy over the product, the benchmarks and
the build (with the settings in pyproject.toml), so that a change that breaks one fails the suite, not a later
reader."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What mypy checks: everything but the tests (whose fixtures and hostile inputs are typed loosely on purpose).
TYPED = ["lbproxy", "bench", "setup.py", "buildsystem/lbproxy_build.py"]


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_lint_and_format() -> None:
    lint = _run(_tool("ruff"), "check", "--no-cache", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(_tool("ruff"), "format", "--no-cache", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy() -> None:
    done = _run(_tool("mypy"), "--cache-dir", "/dev/null", *TYPED)
    assert done.returncode == 0, done.stdout + done.stderr
