"""Lines to a file or stdout, off the event loop, in whole lines.

The event loop only appends a line to a bounded deque (``put``); a thread
drains it every ``FLUSH_INTERVAL`` (sooner when it fills up) with one
``write`` per batch of whole lines on an ``O_APPEND`` descriptor, so lines
from several workers sharing the file never interleave: Linux appends each
write to a regular file as one piece. A pipe only promises that up to
``PIPE_BUF`` bytes, so batches to a pipe stay within it. When the deque is
full the line is dropped and counted (``dropped``), never waited for.

The file is reopened when asked (SIGUSR1, after logrotate's rename) and
when the thread notices, at most once a second, that the path no longer
names the open file (rotated away or deleted), as Envoy and nginx do.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import deque

log = logging.getLogger(f"meshgate.{__name__}")

FLUSH_INTERVAL = 0.2
ROTATION_CHECK_INTERVAL = 1.0
# A batch to a regular file; big enough that one write carries many lines.
MAX_FILE_BATCH = 256 * 1024
PIPE_BATCH = 4096  # PIPE_BUF on Linux: writes up to this size are atomic
DROP_REPORT_INTERVAL = 10.0
STREAMS = {"stdout": 1, "stderr": 2}


class LineWriter:
    def __init__(self, path: str, capacity: int = 10_000) -> None:
        self.path = path
        self.capacity = capacity
        self.dropped = 0  # lines not written: the buffer was full, or a write failed
        self._lines: deque[bytes] = deque()
        self._wake_at = max(capacity // 4, 1)
        self._wake = threading.Event()
        self._stopping = False
        self._reopen_asked = False
        self._last_rotation_check = time.monotonic()
        self._reported_drops = 0
        self._last_drop_report = 0.0
        self._write_error = ""
        self._fd = self._open()
        self._batch = PIPE_BATCH if _is_pipe(self._fd) else MAX_FILE_BATCH
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    # -- the event loop's side -------------------------------------------------

    def put(self, line: bytes) -> None:
        lines = self._lines
        if len(lines) >= self.capacity:
            self.dropped += 1
            return
        lines.append(line)
        if len(lines) == self._wake_at:
            self._wake.set()

    def reopen(self) -> None:
        """Reopen the file by its path at the next flush (SIGUSR1)."""
        self._reopen_asked = True
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered and stop (blocking: call it from a thread)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self.path not in STREAMS:
            os.close(self._fd)

    # -- the thread's side -------------------------------------------------------

    def _open(self) -> int:
        if self.path in STREAMS:
            return STREAMS[self.path]
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            try:
                self._follow_rotation()
                self._flush()
                self._report_drops()
            except Exception:  # the thread must outlive any one failure
                log.exception("access log writer failed")
        self._flush()

    def _follow_rotation(self) -> None:
        if self.path in STREAMS:
            return
        now = time.monotonic()
        due = now - self._last_rotation_check >= ROTATION_CHECK_INTERVAL
        if not (self._reopen_asked or due):
            return
        self._last_rotation_check = now
        if not self._reopen_asked and self._still_the_same_file():
            return
        self._reopen_asked = False
        try:
            fresh = self._open()
        except OSError as exc:
            log.error("access log %s cannot be reopened: %s", self.path, exc)
            return
        old, self._fd = self._fd, fresh
        os.close(old)
        log.info("access log %s reopened", self.path)

    def _still_the_same_file(self) -> bool:
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def _flush(self) -> None:
        lines = self._lines
        while lines:
            batch = [lines.popleft()]
            size = len(batch[0])
            # Only this thread takes lines out, so the peek stays true.
            while lines and size + len(lines[0]) <= self._batch:
                line = lines.popleft()
                batch.append(line)
                size += len(line)
            self._write(b"".join(batch), len(batch))

    def _write(self, data: bytes, count: int) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            # Reported with the drops, at most every DROP_REPORT_INTERVAL.
            self.dropped += count
            self._write_error = str(exc)

    def _report_drops(self) -> None:
        dropped = self.dropped
        now = time.monotonic()
        if dropped == self._reported_drops or now - self._last_drop_report < DROP_REPORT_INTERVAL:
            return
        why = f"writes fail: {self._write_error}" if self._write_error else "buffer full"
        log.warning(
            "access log %s: %d lines dropped (%s; buffer of %d lines)",
            self.path,
            dropped - self._reported_drops,
            why,
            self.capacity,
        )
        self._write_error = ""
        self._reported_drops = dropped
        self._last_drop_report = now


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
