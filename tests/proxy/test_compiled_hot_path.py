"""The compiled hot path: which code runs (``lbproxy.proxy.compiled``) and that the install compiled it.

``judge`` is pure (it reads a directory), so its cases run on made-up directories; the import switch runs in
fresh interpreters against the real install.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lbproxy.proxy import HOT_PATH
from lbproxy.proxy.compiled import MANIFEST, NO_EXTENSIONS, judge

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
sys.path.insert(0, str(ROOT / "buildsystem"))
import lbproxy_build  # noqa: E402


@pytest.fixture(autouse=True)
def _shared_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable stand-in for the group's shared library (``<group>__mypyc``) the records name."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "madeup_group__mypyc.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package(tmp_path: Path, names: tuple[str, ...] = ("downstream", "upstream"), *, record: bool = True) -> Path:
    """A made-up ``lbproxy/proxy`` as a successful build leaves it (its record written like the build's), with
    ``lbproxy/config.py`` as a source the compiled modules' types come from."""
    package = tmp_path / "lbproxy" / "proxy"
    package.mkdir(parents=True)
    for name in names:
        (package / f"{name}.py").write_text(f"# {name}\n")
        (package / f"{name}{SUFFIX}").write_bytes(b"\x7fELF " + name.encode())
    (package / "spec.py").write_text("# never compiled\n")
    (tmp_path / "lbproxy" / "config.py").write_text("# the settings' types\n")
    if record:
        shared = tmp_path / "lib" / "madeup_group__mypyc.py"
        manifest = {
            "compiled": True,
            "compiler": "mypy==x",
            "suffix": SUFFIX,
            "group": "madeup_group",
            "modules": {f"lbproxy.proxy.{n}": _sha(package / f"{n}.py") for n in names},
            "dependencies": {"lbproxy/config.py": _sha(tmp_path / "lbproxy" / "config.py")},
            "binaries": {p.name: _sha(p) for p in [shared, *(package / f"{n}{SUFFIX}" for n in names)]},
        }
        (package / MANIFEST).write_text(json.dumps(manifest))
    return package


def test_compiled_modules_built_from_the_source_beside_them_run(tmp_path: Path) -> None:
    hot_path, modules = judge(_package(tmp_path), {})
    assert hot_path.compiled and hot_path.describe() == "compiled (mypy==x)"
    assert set(modules) == {"lbproxy.proxy.downstream", "lbproxy.proxy.upstream"}  # not spec: no compiled copy


def test_a_source_edited_after_the_install_runs_as_edited_and_says_to_reinstall(tmp_path: Path) -> None:
    package = _package(tmp_path)
    (package / "upstream.py").write_text("# upstream, edited\n")
    hot_path, modules = judge(package, {})
    assert not hot_path.compiled and hot_path.ignored
    assert "lbproxy.proxy.upstream changed since it was compiled: reinstall" in hot_path.detail
    assert len(modules) == 2  # all or none: the unchanged module runs from its source too


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no record", f"no readable record of a build ({MANIFEST})"),
        ("broken record", f"no readable record of a build ({MANIFEST})"),
        ("malformed record", f"{MANIFEST} is malformed"),
        ("other modules", "not the ones"),
        ("no shared library", "their shared library (gone_group__mypyc) is missing"),
        ("another interpreter", "compiled for another interpreter (.cpython-399-x.so)"),
        ("a compiled file changed", f"upstream{SUFFIX} is not the file {MANIFEST} records"),
        ("the shared library changed", f"madeup_group__mypyc.py is not the file {MANIFEST} records"),
        ("a dependency changed", "lbproxy/config.py, whose types the compiled modules use, changed"),
        ("a dependency is gone", "lbproxy/config.py, whose types the compiled modules use, changed"),
        ("switched off", f"{NO_EXTENSIONS} is set"),
        ("none compiled", "not compiled at install"),
        ("compiling failed", "compiling failed at install: gcc: error"),
    ],
)
def test_the_source_runs_whenever_the_compiled_modules_cannot_be_trusted(
    tmp_path: Path, case: str, reason: str
) -> None:
    environ = {NO_EXTENSIONS: "1"} if case == "switched off" else {}
    package = _package(tmp_path, record=case != "no record")
    record = json.loads((package / MANIFEST).read_text()) if case != "no record" else {}
    if case == "broken record":
        (package / MANIFEST).write_text("{not json")
    elif case == "malformed record":
        (package / MANIFEST).write_text(json.dumps(record | {"binaries": 3}))
    elif case == "other modules":
        (package / f"framing{SUFFIX}").write_bytes(b"")
        (package / "framing.py").write_text("")
    elif case == "no shared library":
        (package / MANIFEST).write_text(json.dumps(record | {"group": "gone_group"}))
    elif case == "another interpreter":
        (package / MANIFEST).write_text(json.dumps(record | {"suffix": ".cpython-399-x.so"}))
    elif case == "a compiled file changed":
        (package / f"upstream{SUFFIX}").write_bytes(b"\x7fELF truncated")
    elif case == "a dependency changed":
        (tmp_path / "lbproxy" / "config.py").write_text("# the settings' types, changed\n")
    elif case == "a dependency is gone":
        (tmp_path / "lbproxy" / "config.py").unlink()
    elif case == "the shared library changed":
        (tmp_path / "lib" / "madeup_group__mypyc.py").write_text("# another build's\n")
    elif case in ("none compiled", "compiling failed"):
        for path in package.glob(f"*{SUFFIX}"):
            path.unlink()
        if case == "compiling failed":  # (recorded as the build records it, in a project root of its own)
            lbproxy_build.write_failure(tmp_path / "root", "compiling failed at install: gcc: error")
            (package / MANIFEST).write_text((tmp_path / "root" / lbproxy_build.MANIFEST).read_text())
    hot_path, _ = judge(package, environ)
    assert not hot_path.compiled and reason in hot_path.detail
    assert hot_path.ignored == (case not in ("switched off", "none compiled", "compiling failed"))


def _imported_from(environ: dict[str, str]) -> list[str]:
    code = (
        "import lbproxy.proxy as p, lbproxy.proxy.downstream as d, lbproxy.proxy.upstream as u;"
        "print(p.HOT_PATH.compiled, d.__file__, u.__file__, sep='\\n')"
    )
    env = {k: v for k, v in os.environ.items() if k != NO_EXTENSIONS} | environ
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/")
    return out.stdout.split()


def test_the_switch_runs_every_hot_module_from_its_source() -> None:
    compiled, *files = _imported_from({NO_EXTENSIONS: "1"})
    assert compiled == "False" and all(f.endswith(".py") for f in files), files
    compiled, *files = _imported_from({})
    expected = ".py" if compiled == "False" else SUFFIX
    assert all(f.endswith(expected) for f in files), files  # all or none, either way


def test_where_this_machine_can_compile_the_install_did() -> None:
    """The suite tests what users run: where a C compiler and Python's headers are at hand, ``pip install``
    compiled the hot path, and from the source now in the tree (after an edit: reinstall, or set
    LBPROXY_NO_EXTENSIONS=1 to test the source alone)."""
    if os.environ.get(NO_EXTENSIONS, "") not in ("", "0"):
        pytest.skip(f"{NO_EXTENSIONS} is set: the source is under test")
    why = lbproxy_build.why_not_compiled()
    if why is not None:
        pytest.skip(f"this machine builds pure Python: {why}")
    assert HOT_PATH.compiled, HOT_PATH.describe()
    assert tuple(HOT_PATH.detail.split()) == (lbproxy_build.MYPY,)


def test_the_build_compiles_the_modules_the_record_names() -> None:
    names = {p[:-3].replace("/", ".") for p in lbproxy_build.HOT_PATH}
    assert all((ROOT / p).exists() for p in lbproxy_build.HOT_PATH)
    if HOT_PATH.compiled:
        record = json.loads((ROOT / "lbproxy" / "proxy" / MANIFEST).read_text())
        assert set(record["modules"]) == names


# -- the compiled code answers as its source does (differential, where the install compiled) ----------------
@functools.cache
def _source_module(name: str) -> Any:
    """``lbproxy.proxy.<name>`` loaded from its ``.py`` under another name, beside the compiled one."""
    path = ROOT / "lbproxy" / "proxy" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_source_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outcome(call: Any, *args: Any) -> Any:
    """What a call gave, comparable across the compiled and the source classes: the error's kind and
    fields, or the result with every slot of a ``RequestHead``."""
    try:
        result = call(*args)
    except Exception as exc:  # FramingError (a different class in each), or anything the compiled code raised
        return (type(exc).__name__, getattr(exc, "status", None), str(exc))
    if hasattr(result, "prefix"):  # a RequestHead: every field the source class declares
        return {name: getattr(result, name) for name in _source_module("framing").RequestHead.__slots__}
    return result


_SEEDS = [
    b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    b"GET http://a/x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nCookie: AWSALB=x; a=b\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a:80\r\nConnection: x-hop, close\r\nX-Hop: 1\r\nTE: trailers\r\n\r\n",
]
_ALPHABET = b"\r\n\t :,;=/-_.0123456789aAcCeEhHkKlLnNtT\x00\x7f\xff"


def _mutant(rng: random.Random) -> bytes:
    head = bytearray(rng.choice(_SEEDS))
    for _ in range(rng.randrange(4)):
        at = rng.randrange(len(head))
        action = rng.randrange(3)
        if action == 0:
            head[at : at + 1] = b""
        elif action == 1:
            head.insert(at, rng.choice(_ALPHABET))
        else:
            head[at] = rng.choice(_ALPHABET)
    return bytes(head)


@pytest.mark.skipif(not HOT_PATH.compiled, reason="the hot path runs as source here: nothing to compare")
def test_compiled_framing_answers_every_head_and_response_as_its_source() -> None:
    from lbproxy.proxy import framing, upstream

    source_framing, source_upstream = _source_module("framing"), _source_module("upstream")
    assert type(framing.parse_request_head).__name__ != "function"  # (the compiled one is a builtin)
    rng = random.Random(20261205)
    outcomes: set[str] = set()
    for _ in range(4000):
        head = _mutant(rng)
        for limits in ((16384, 65536, 100), (40, 200, 4)):
            compiled = _outcome(framing.parse_request_head, head, *limits)
            assert compiled == _outcome(source_framing.parse_request_head, head, *limits), head
            outcomes.add(compiled[0] if isinstance(compiled, tuple) else "parsed")
        response = head.replace(b"GET /a?b=1 HTTP/1.1", b"HTTP/1.1 200 OK").replace(b"Host", b"Content-Length")
        assert _outcome(upstream.whole_response, response, {}) == _outcome(
            source_upstream.whole_response, response, {}
        ), response
    assert outcomes == {"parsed", "FramingError"}  # both outcomes, and nothing else raised


@pytest.mark.skipif(not HOT_PATH.compiled, reason="the hot path runs as source here: nothing to compare")
def test_compiled_chunked_decoder_answers_every_split_as_its_source() -> None:
    from lbproxy.proxy import framing

    source_framing = _source_module("framing")
    rng = random.Random(5)
    bodies = [b"5\r\nhello\r\n0\r\n\r\n", b"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n", b"A\r\n0123456789\r\n0\r\n\r\n"]
    for _ in range(2000):
        body = bytearray(rng.choice(bodies))
        if rng.random() < 0.5:
            body[rng.randrange(len(body))] = rng.choice(_ALPHABET)
        cuts = sorted(rng.sample(range(1, len(body)), k=min(3, len(body) - 1)))
        pieces = [bytes(body[a:b]) for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        decoders = (framing.ChunkedDecoder(64, 64), source_framing.ChunkedDecoder(64, 64))
        for piece in pieces:
            fed = [_outcome(d.feed, piece) for d in decoders]
            assert fed[0] == fed[1], (bytes(body), piece)
            assert decoders[0].done == decoders[1].done
            if isinstance(fed[0], tuple) and isinstance(fed[0][0], str):
                break  # refused: both alike
