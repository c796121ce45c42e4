"""lbproxy's build backend: setuptools, plus the data plane's hot path compiled to C with mypyc.

The modules in ``HOT_PATH`` run once per request or per connection. Where this machine can compile them
(a C compiler, Python's headers, CPython, ``LBPROXY_NO_EXTENSIONS`` unset), the build asks for mypyc
(``get_requires_for_build_*``) and ``setup.py`` compiles them; anywhere else, or if the compilation fails,
lbproxy installs as pure Python and behaves the same, only slower (``lbproxy/proxy/compiled.py`` decides at
run time which one runs, and says why). Compiling is the same source through mypyc: nothing is written in C
by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every other hook is setuptools' own)

#: The compiler, pinned: the build is reproducible and the generated code is the one measured.
MYPY = "mypy==2.4.1"
#: Compiled together (one mypyc group: they call each other's classes directly, so all or none run).
HOT_PATH = (
    "lbproxy/proxy/downstream.py",
    "lbproxy/proxy/upstream.py",
    "lbproxy/proxy/framing.py",
    "lbproxy/proxy/forwarding.py",
    "lbproxy/proxy/memo.py",
    "lbproxy/proxy/tlsconnection.py",
    "lbproxy/proxy/metrics.py",
    "lbproxy/proxy/dataplane.py",
    "lbproxy/proxy/balancer.py",
    "lbproxy/proxy/failures.py",
    "lbproxy/proxy/stickiness.py",
)
#: The rest of the source the compiled code's types come from (mypyc checks them at run time too): a change to
#: any of these also means recompiling. (``compiled.py`` decides which code runs; it is not part of either.)
DEPENDENCIES = ("lbproxy/proxy/*.py", "lbproxy/contract/*.py", "lbproxy/config.py")
#: Written next to the compiled modules: what was compiled, from which sources, by what, into which files
#: (``lbproxy/proxy/compiled.py`` reads it).
MANIFEST = "lbproxy/proxy/_compiled.json"
#: The shared library of the group (a top-level module, named by mypyc as ``<group>__mypyc``).
GROUP = "lbproxy_hotpath"
NO_EXTENSIONS = "LBPROXY_NO_EXTENSIONS"


def why_not_compiled() -> str | None:
    """Why this machine builds pure Python, or None when it compiles the hot path."""
    if os.environ.get(NO_EXTENSIONS, "") not in ("", "0"):
        return f"{NO_EXTENSIONS} is set"
    if sys.implementation.name != "cpython":
        return f"mypyc needs CPython, not {sys.implementation.name}"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "no Python headers (Python.h; Debian: python3-dev)"
    return None


def _with_mypyc(requires: list[str]) -> list[str]:
    return requires + ([MYPY] if why_not_compiled() is None else [])


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _with_mypyc(_setuptools.get_requires_for_build_wheel(config_settings))


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _with_mypyc(_setuptools.get_requires_for_build_editable(config_settings))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_digests(root: Path) -> dict[str, str]:
    """Module name -> its source's digest, taken before compiling (an edit made during the build is then
    seen as a change)."""
    return {p[:-3].replace("/", "."): digest(root / p) for p in HOT_PATH}


def dependency_digests(root: Path) -> dict[str, str]:
    """Path (from the project root) -> digest, for every source in ``DEPENDENCIES`` not in ``HOT_PATH``."""
    paths = {p for pattern in DEPENDENCIES for p in root.glob(pattern)}
    chosen = [p for p in sorted(paths) if str(p.relative_to(root)) not in HOT_PATH and p.name != "compiled.py"]
    return {str(p.relative_to(root)): digest(p) for p in chosen}


def compiled_files(out_dir: Path, suffix: str) -> list[Path]:
    """The files a build with extension ``suffix`` leaves in ``out_dir``: one per module and the group's."""
    return [out_dir / (p[:-3] + suffix) for p in HOT_PATH] + [out_dir / (GROUP + "__mypyc" + suffix)]


def write_manifest(
    out_dir: Path, sources: dict[str, str], dependencies: dict[str, str], compiler: str, suffix: str
) -> None:
    """What this build compiled, in ``out_dir``'s copy of the package: the compiler, the interpreter's
    extension suffix, the digests of each module's source, of the sources its types come from, and of each
    compiled file (``lbproxy/proxy/compiled.py`` trusts the compiled modules only if all of them match)."""
    binaries = {f.name: digest(f) for f in compiled_files(out_dir, suffix)}
    record = {"compiled": True, "compiler": compiler, "suffix": suffix, "group": GROUP}
    _write(out_dir, record | {"modules": sources, "dependencies": dependencies, "binaries": binaries})


def write_failure(out_dir: Path, why: str) -> None:
    """Record that compiling failed at install, and why (``compiled.py`` says so instead of guessing)."""
    _write(out_dir, {"compiled": False, "why": why})


def remove_compiled(out_dir: Path) -> None:
    """Delete what an earlier build compiled into ``out_dir`` (any interpreter's, and modules no longer in
    ``HOT_PATH``: the package has no other compiled modules), and its record."""
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for pattern in (str(Path(MANIFEST).parent / "*.so"), GROUP + "__mypyc.*.so"):
        for path in out_dir.glob(pattern):
            path.unlink()


def _write(out_dir: Path, record: dict[str, Any]) -> None:
    target = out_dir / MANIFEST
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1) + "\n")
