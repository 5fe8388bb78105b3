"""The command line's own texts: help for every command and flag, examples, version."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway import demo
from gateway.cli import build_parser, main


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    root = build_parser()
    yield "meshgate", root
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_command_and_flag_has_help_and_no_rst_markup() -> None:
    seen = 0
    for name, parser in parsers():
        texts = [parser.description or "", parser.epilog or ""]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name}: {action.dest} has no help"
            texts.append(action.help)
            seen += 1
        for text in texts:
            assert "``" not in text and "`" not in text, f"{name}: {text!r}"
            assert ":class:" not in text and ":func:" not in text
    assert seen > 40


def test_every_command_has_examples() -> None:
    for name, parser in parsers():
        assert parser.epilog and "examples:" in parser.epilog, name
        assert "meshgate " in parser.epilog, name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("meshgate ")


def test_a_taken_backend_port_moves_the_demo_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Held the way grpcio holds it: SO_REUSEPORT, which would let a second server
    # share the port silently.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        chosen = demo.choose_backend_port(taken)
    assert chosen != taken
    assert f"port {taken} is taken" in capsys.readouterr().out
    free = demo.free_port()
    assert demo.choose_backend_port(free) == free


def test_the_demo_config_points_at_the_chosen_port(tmp_path: Path) -> None:
    config = demo.demo_config("127.0.0.1:18081", "127.0.0.1:19902")
    written = yaml.safe_load(demo.write_config(tmp_path, config, 50123).read_text())
    assert written["clusters"][0]["endpoints"] == [{"address": "127.0.0.1:50123"}]
    assert written["listeners"][0]["address"] == "127.0.0.1:18081"
    assert written["admin"]["address"] == "127.0.0.1:19902"
    assert Path(written["descriptors"][0]["proto"]).is_file()
