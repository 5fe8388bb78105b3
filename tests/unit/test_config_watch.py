"""The config watch's decisions: what is watched, what counts, when bytes are settled."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import watchfiles

from gateway.config_watch import (
    _relevant_to,
    content_digest,
    settled_digest,
    watch_config,
    watched_directories,
)


def configmap(tmp_path: Path, text: str, stamp: str) -> Path:
    """Kubernetes' layout: config.yaml -> ..data/config.yaml, ..data -> ..<stamp>/."""
    version = tmp_path / f"..{stamp}"
    version.mkdir()
    (version / "config.yaml").write_text(text)
    link = tmp_path / "..data_tmp"
    link.symlink_to(version.name)
    os.replace(link, tmp_path / "..data")
    config = tmp_path / "config.yaml"
    if not config.is_symlink():
        config.symlink_to("..data/config.yaml")
    return config


def test_configmap_swap_changes_the_content_behind_the_same_path(tmp_path: Path) -> None:
    config = configmap(tmp_path, "a: 1\n", "2026_01")
    before = content_digest(config)
    configmap(tmp_path, "a: 2\n", "2026_02")
    assert content_digest(config) != before
    assert tmp_path in watched_directories(config)
    assert tmp_path / "..2026_02" in watched_directories(config)


def test_only_the_file_and_configmap_entries_are_relevant(tmp_path: Path) -> None:
    relevant = _relevant_to(tmp_path / "config.yaml")
    added = watchfiles.Change.added
    assert relevant(added, str(tmp_path / "config.yaml"))
    assert relevant(added, str(tmp_path / "..data"))
    assert relevant(added, str(tmp_path / "..2026_02"))
    assert not relevant(added, str(tmp_path / "gateway.log"))


def test_settled_digest_waits_until_two_reads_agree(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("listeners:\n")

    async def scenario() -> str | None:
        async def writer() -> None:
            # A slow writer appending in pieces, as a non-atomic copy would.
            for piece in ("  - name: a\n", "    address: 127.0.0.1:1\n"):
                await asyncio.sleep(0.03)
                with path.open("a") as file:
                    file.write(piece)

        task = asyncio.create_task(writer())
        digest = await settled_digest(path, 0.05)
        await task
        return digest

    assert asyncio.run(scenario()) == content_digest(path)


def test_an_unreadable_file_has_no_digest(tmp_path: Path) -> None:
    assert content_digest(tmp_path / "missing.yaml") is None


def test_a_change_before_the_watch_began_is_still_reported(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("a: 1\n")
    loaded = content_digest(config)
    config.write_text("a: 2\n")  # no event will come for this one
    seen: list[str] = []
    stop = asyncio.Event()

    async def on_change() -> None:
        seen.append(config.read_text())
        stop.set()

    async def scenario() -> None:
        await asyncio.wait_for(watch_config(config, 0.05, on_change, stop, loaded), 10)

    asyncio.run(scenario())
    assert seen == ["a: 2\n"]
