"""Noticing that certificate files changed, without a watcher thread.

cert-manager and kubelet swap a symlink, istio-agent rewrites the files:
either way the (inode, size, mtime) of some path changes. A holder of TLS
material asks :meth:`WatchedFiles.changed` when it is about to use it (a
handshake, a new connection); the files are stat'ed at most once per
interval, so the check costs nothing per request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

Signature = tuple[tuple[int, int, int], ...]
Clock = Callable[[], float]


def signature(paths: Sequence[str]) -> Signature:
    """What identifies the current content of ``paths``; a missing file counts as (0, 0, 0)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class WatchedFiles:
    def __init__(
        self, paths: Sequence[str], interval_s: float, clock: Clock = time.monotonic
    ) -> None:
        self.paths = tuple(paths)
        self._interval = interval_s
        self._clock = clock
        self._next_check = clock() + interval_s
        self._loaded = signature(self.paths)

    def changed(self) -> bool:
        """True once per change of any file, checked at most every interval."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._interval
        current = signature(self.paths)
        if current == self._loaded:
            return False
        self._loaded = current
        return True
