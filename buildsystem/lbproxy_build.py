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
    "lbproxy/proxy/tls.py",
    "lbproxy/proxy/failures.py",
    "lbproxy/proxy/stickiness.py",
)
#: Written next to the compiled modules: each one's source digest (``lbproxy/proxy/compiled.py`` reads it).
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


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(root: Path, out_dir: Path) -> None:
    """Record each compiled module's source digest in ``out_dir``'s copy of the package."""
    modules = {p[:-3].replace("/", "."): source_digest(root / p) for p in HOT_PATH}
    target = out_dir / MANIFEST
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"group": GROUP, "compiler": MYPY, "modules": modules}, indent=1) + "\n")
