"""Which code runs the data plane's hot path: the modules mypyc compiled at install time, or their source.

``pip install`` compiles the modules a request or a connection runs through (``downstream``, ``upstream``,
``framing``, ``forwarding``, ``memo``, ``tlsconnection``, ``metrics``, ``dataplane``, ``balancer``,
``failures``, ``stickiness``: ``HOT_PATH`` in ``buildsystem/lbproxy_build.py``) where the machine can, and
writes ``_compiled.json`` beside them: what it compiled, from which sources, by which compiler, into which
files (or, if compiling failed, why). Python would import a compiled module before its ``.py``;
``choose`` (run once, when ``lbproxy.proxy`` is imported) decides instead:

- the compiled modules run only when every one recorded is there, compiled for this interpreter from the
  source now beside it (and from the sources their types come from: the rest of ``lbproxy.proxy``,
  ``lbproxy.contract``, ``lbproxy.config``), and every compiled file (theirs and their shared library's) is
  the one the build recorded (a digest each);
- otherwise every module that has a compiled copy runs from its ``.py``: all or none, because compiled
  modules call each other's classes directly. A source edited after the install (a developer's checkout)
  therefore runs as edited, and the reason says to reinstall;
- ``LBPROXY_NO_EXTENSIONS=1`` runs the source on purpose (a debugger, a profile of Python lines, the pure
  build's behaviour).

Both behave the same; the compiled one spends a quarter to a third fewer instructions per keep-alive
request or new connection (bench/RESULTS.md). ``HotPath.describe()`` is logged by the supervisor and
shown by ``/health``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

NO_EXTENSIONS = "LBPROXY_NO_EXTENSIONS"
MANIFEST = "_compiled.json"
_PACKAGE = "lbproxy.proxy"


@dataclasses.dataclass(frozen=True, slots=True)
class HotPath:
    compiled: bool
    #: The compiler (compiled), or why the source runs.
    detail: str
    #: Compiled modules are installed but cannot be trusted (the supervisor's log says so as a warning).
    ignored: bool = False

    def describe(self) -> str:
        return f"compiled ({self.detail})" if self.compiled else f"Python source ({self.detail})"


def compiled_modules(directory: Path) -> dict[str, Path]:
    """Module name -> its ``.py``, for every module in ``directory`` that also has a compiled copy here."""
    found = {}
    for path in directory.iterdir():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if path.name.endswith(suffix):
                source = directory / (path.name[: -len(suffix)] + ".py")
                if source.exists():
                    found[f"{_PACKAGE}.{source.stem}"] = source
    return found


def judge(directory: Path, environ: Mapping[str, str]) -> tuple[HotPath, dict[str, Path]]:
    """Whether the compiled modules in ``directory`` may run (pure: reads files only), and the modules that
    have a compiled copy."""
    modules = compiled_modules(directory)
    if environ.get(NO_EXTENSIONS, "") not in ("", "0"):
        return HotPath(False, f"{NO_EXTENSIONS} is set"), modules
    try:
        record = _record(directory)
    except ValueError:
        record = None
    if not modules:
        if record is not None and record.get("compiled") is False:
            return HotPath(False, str(record.get("why", "compiling failed at install"))), modules
        why = "no C compiler or Python headers, or LBPROXY_NO_EXTENSIONS set then"
        return HotPath(False, f"not compiled at install ({why})"), modules
    distrust = _distrust(directory, modules, record)
    if distrust is not None:
        return HotPath(False, f"{distrust}: reinstall (pip install -e .)", ignored=True), modules
    assert record is not None
    return HotPath(True, str(record["compiler"])), modules


def _record(directory: Path) -> dict[str, Any]:
    """``_compiled.json`` (ValueError: missing, unreadable or not an object)."""
    try:
        record = json.loads((directory / MANIFEST).read_text())
    except OSError as exc:
        raise ValueError(exc) from exc
    if not isinstance(record, dict):
        raise ValueError("not an object")
    return record


def _distrust(directory: Path, modules: Mapping[str, Path], record: dict[str, Any] | None) -> str | None:
    """Why the compiled modules must not run, or None: every one of them and their shared library must be
    the files this interpreter's build recorded, compiled from the sources now beside them."""
    if record is None or record.get("compiled") is not True:
        return f"no readable record of a build ({MANIFEST}) beside the compiled modules"
    try:
        sources: dict[str, str] = dict(record["modules"])
        dependencies: dict[str, str] = dict(record["dependencies"])
        binaries: dict[str, str] = dict(record["binaries"])
        suffix, shared = str(record["suffix"]), f"{record['group']}__mypyc"
    except (KeyError, TypeError, ValueError):
        return f"{MANIFEST} is malformed"
    if suffix != importlib.machinery.EXTENSION_SUFFIXES[0]:
        return f"they were compiled for another interpreter ({suffix})"
    if set(sources) != set(modules):
        return f"the compiled modules are not the ones {MANIFEST} records"
    spec = importlib.util.find_spec(shared)
    if spec is None or spec.origin is None:
        return f"their shared library ({shared}) is missing"
    files = [Path(spec.origin), *(directory / (name.rsplit(".", 1)[1] + suffix) for name in sorted(modules))]
    for path in files:
        if not path.exists() or _digest(path) != binaries.get(path.name):
            return f"{path.name} is not the file {MANIFEST} records"
    for name, source in sorted(modules.items()):
        if _digest(source) != sources[name]:
            return f"{name} changed since it was compiled"
    root = directory.parent.parent  # (the records name dependencies from the directory holding ``lbproxy``)
    for relative, recorded in sorted(dependencies.items()):
        path = root / relative
        if not path.exists() or _digest(path) != recorded:
            return f"{relative}, whose types the compiled modules use, changed since they were compiled"
    return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _SourceFirst:
    """A meta path finder that loads the named modules from their ``.py``, never from a compiled copy."""

    def __init__(self, sources: Mapping[str, Path]) -> None:
        self.sources = dict(sources)

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(name)
        return None if source is None else importlib.util.spec_from_file_location(name, source)


def choose(environ: Mapping[str, str] = os.environ) -> HotPath:
    """Decide once per process, before any hot-path module is imported (``lbproxy.proxy.__init__``)."""
    hot_path, modules = judge(Path(__file__).parent, environ)
    if not hot_path.compiled and modules:
        sys.meta_path.insert(0, _SourceFirst(modules))
    return hot_path
