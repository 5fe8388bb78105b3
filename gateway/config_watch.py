"""Watching the config file, the way Kubernetes updates a mounted ConfigMap too.

A ConfigMap volume holds ``config.yaml -> ..data/config.yaml`` and
``..data -> ..<timestamp>/``; an update writes a new timestamped directory
and renames a new ``..data`` link over the old one, so the file itself never
changes: its directory does. The watch therefore follows the file's
directory (and, for a symlinked file, the directory its target resolves
into), and decides by content, not by event: a change is reported only when
the bytes behind the path differ from the last ones reported.

Editors and ``cp`` may write a file in pieces. The bytes are taken only once
they read the same twice, ``debounce`` apart; still, a writer should write
a temporary file and rename it over the config (atomic replace), which
readers can never see half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(f"meshgate.{__name__}")
# watchfiles logs every batch of changes at INFO; the reload logs what matters.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

# Reads before giving up on a file that keeps changing.
MAX_SETTLE_READS = 20


def content_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


async def settled_digest(path: Path, debounce: float) -> str | None:
    """The file's digest once two reads ``debounce`` apart agree (None if unreadable)."""
    previous = content_digest(path)
    for _ in range(MAX_SETTLE_READS):
        await asyncio.sleep(debounce)
        current = content_digest(path)
        if current == previous:
            return current
        previous = current
    return previous


def watched_directories(path: Path) -> list[Path]:
    directories = {path.absolute().parent}
    with contextlib.suppress(OSError):
        directories.add(path.resolve().parent)
    return sorted(directories)


def _relevant_to(path: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Events about the file, its symlink's target, or ConfigMap's ``..`` entries;
    not the other files of the directory (a log file beside the config, say)."""
    names = {path.name}
    with contextlib.suppress(OSError):
        names.add(path.resolve().name)

    def relevant(change: watchfiles.Change, changed: str) -> bool:
        name = Path(changed).name
        return name in names or name.startswith("..")

    return relevant


# The watch also looks at the file this often without an event, so a change
# made between the load and the watch being armed is picked up, not lost.
RECHECK_MS = 1000


async def watch_config(
    path: Path,
    debounce: float,
    on_change: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    loaded_digest: str | None = None,
) -> None:
    """Call ``on_change`` whenever the bytes behind ``path`` change, until ``stop``."""
    last = loaded_digest if loaded_digest is not None else content_digest(path)
    debounce_ms = max(int(debounce * 1000), 50)
    while not stop.is_set():
        directories = watched_directories(path)
        async for changes in watchfiles.awatch(
            *directories,
            stop_event=stop,
            debounce=debounce_ms,
            step=min(50, debounce_ms),
            rust_timeout=RECHECK_MS,
            yield_on_timeout=True,
            recursive=False,
            ignore_permission_denied=True,
            watch_filter=_relevant_to(path),
        ):
            if not changes and content_digest(path) == last:
                continue  # a quiet tick, and nothing was missed
            digest = await settled_digest(path, debounce)
            if digest is None or digest == last:
                continue
            last = digest
            await on_change()
            # A swapped symlink may now resolve into another directory.
            if watched_directories(path) != directories:
                break
