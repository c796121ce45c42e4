"""Builds lbproxy (metadata: pyproject.toml). The data plane's hot path is compiled with mypyc where this
machine can, and the build falls back to pure Python when it cannot: ``buildsystem/lbproxy_build.py``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "buildsystem"))
import lbproxy_build  # noqa: E402


class BuildHotPath(build_ext):
    """Compile the hot path; on any failure, install without it (pure Python) and say why."""

    def run(self) -> None:
        out_dir = ROOT if self.inplace else Path(self.build_lib)
        (out_dir / lbproxy_build.MANIFEST).unlink(missing_ok=True)
        try:
            super().run()
        except Exception as exc:  # a compiler error of any kind: the pure-Python package still works
            print(f"lbproxy: compiling the hot path failed ({exc}); installing pure Python", file=sys.stderr)
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self.extensions: list[Any] = []
            return
        lbproxy_build.write_manifest(ROOT, out_dir)


def extensions() -> dict[str, Any]:
    reason = lbproxy_build.why_not_compiled()
    if reason is None:
        try:
            from mypyc.build import mypycify
        except ImportError:
            reason = f"mypyc is not installed (the build asks for {lbproxy_build.MYPY})"
    if reason is not None:
        print(f"lbproxy: installing pure Python: {reason}", file=sys.stderr)
        return {}
    try:
        modules = mypycify(list(lbproxy_build.HOT_PATH), opt_level="3", group_name=lbproxy_build.GROUP)
    except (Exception, SystemExit) as exc:  # mypyc refused the source (it exits on a type error)
        print(f"lbproxy: mypyc could not compile the hot path ({exc!r}); installing pure Python", file=sys.stderr)
        return {}
    return {"ext_modules": modules, "cmdclass": {"build_ext": BuildHotPath}}


setup(**extensions())
