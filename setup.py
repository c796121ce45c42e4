"""Builds lbproxy (metadata: pyproject.toml). The data plane's hot path is compiled with mypyc where this
machine can, and the build falls back to pure Python when it cannot: ``buildsystem/lbproxy_build.py``."""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "buildsystem"))
import lbproxy_build  # noqa: E402

#: Each hot-path module's source digest, and those of the sources its types come from, taken before mypyc
#: reads them.
SOURCES = lbproxy_build.source_digests(ROOT)
DEPENDENCIES = lbproxy_build.dependency_digests(ROOT)


class BuildHotPath(build_ext):
    """Compile the hot path and record it; on any failure, install without it (pure Python) and say why."""

    def run(self) -> None:
        out_dir = ROOT if self.inplace else Path(self.build_lib)
        lbproxy_build.remove_compiled(out_dir)
        try:
            super().run()
        except Exception as exc:  # a compiler error of any kind: the pure-Python package still works
            print(f"lbproxy: compiling the hot path failed ({exc}); installing pure Python", file=sys.stderr)
            lbproxy_build.remove_compiled(out_dir)
            lbproxy_build.write_failure(out_dir, f"compiling failed at install: {str(exc)[:300]}")
            self.extensions: list[Any] = []
            return
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        lbproxy_build.write_manifest(out_dir, SOURCES, DEPENDENCIES, f"mypy=={_mypy_version()}", suffix)

    # The record is an output too: setuptools' editable modes link or copy only outputs (``strict`` links
    # each compiled file from where an in-place build left it, and must link the record the same way).
    def get_output_mapping(self) -> dict[str, str]:
        mapping = super().get_output_mapping()
        if self.inplace:
            mapping[str(Path(self.build_lib) / lbproxy_build.MANIFEST)] = str(ROOT / lbproxy_build.MANIFEST)
        return mapping

    def get_outputs(self) -> list[str]:
        outputs = list(super().get_outputs())  # (in place: the mapping's keys, the record's among them)
        return outputs if self.inplace else [*outputs, str(Path(self.build_lib) / lbproxy_build.MANIFEST)]


def _mypy_version() -> str:
    from mypy.version import __version__

    return __version__


def extensions() -> dict[str, Any]:
    reason = lbproxy_build.why_not_compiled()
    if reason is None:
        try:
            from mypyc.build import mypycify
        except ImportError:
            # pip's first look, before it installed the build's requirements (or a build without them):
            # nothing is decided yet, so whatever was compiled here stays.
            print(f"lbproxy: mypyc is not installed (the build asks for {lbproxy_build.MYPY})", file=sys.stderr)
            return {}
        try:
            modules = mypycify(list(lbproxy_build.HOT_PATH), opt_level="3", group_name=lbproxy_build.GROUP)
        except (Exception, SystemExit) as exc:  # mypyc refused the source (it exits on a type error)
            reason = f"mypyc could not compile the hot path ({exc!r})"
        else:
            return {"ext_modules": modules, "cmdclass": {"build_ext": BuildHotPath}}
    print(f"lbproxy: installing pure Python: {reason}", file=sys.stderr)
    # Whatever an earlier in-place build compiled here must not outlive this decision (an editable
    # install's tree would run it from some working directories and not from others).
    lbproxy_build.remove_compiled(ROOT)
    return {}


setup(**extensions())
