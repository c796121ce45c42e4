"""The README's configuration reference cannot drift: every flag of every subcommand and every
``ProxySettings`` field (with its default) is documented, and the top still shows the two commands."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from lbproxy.cli import build_parser
from lbproxy.proxy.spec import ProxySettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[f"{prefix}{name}"] = sub
                out.update(subcommands(sub, f"{prefix}{name} "))
    return out


def test_the_top_shows_the_two_commands() -> None:
    lines = README.splitlines()
    assert lines[0] == "# lbproxy"
    assert lines[3].startswith("pip install -e . && lbproxy demo")
    assert lines[4].startswith("pip install -e '.[test]' && python -m pytest")


def test_every_flag_is_documented() -> None:
    missing = []
    for name, sub in subcommands(build_parser()).items():
        for action in sub._actions:
            flags = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if flags and not any(f"`{flag}" in README for flag in flags):
                missing.append(f"lbproxy {name} {flags[0]}")
    assert not missing, missing


def test_every_lb_setting_is_documented_with_its_default() -> None:
    for f in dataclasses.fields(ProxySettings):
        default = f.default
        shown = (
            f'"{default}"'
            if isinstance(default, str)
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        assert f"| `{f.name}` | `{shown}` |" in README, f.name
