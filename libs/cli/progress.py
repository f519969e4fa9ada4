"""A small progress bar on stderr (stdout stays clean for --json). On a terminal it redraws one line;
elsewhere (CI logs, pipes) it prints a line at every tenth of the way, so logs stay short."""
from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 28


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class ProgressBar:
    """``bar(done, total)`` is an SDK progress callback; ``note`` adds text after the numbers."""

    def __init__(self, label: str, *, unit: str = "bytes", stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.done = 0
        self.total: int | None = None
        self.note = ""
        self._last_tenth = -1
        self._last_draw = 0.0
        self._closed = False

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if not self.enabled or self._closed:
            return
        finished = total is not None and done >= total
        if self.tty:
            now = time.monotonic()
            if finished or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self.render() + "\x1b[K")
                self.stream.flush()
        else:
            tenth = int(10 * done / total) if total else -1
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self.render() + "\n")
                self.stream.flush()

    def render(self) -> str:
        total = self.total
        fraction = min(self.done / total, 1.0) if total else 0.0
        filled = int(WIDTH * fraction)
        bar = "#" * filled + "." * (WIDTH - filled)
        if self.unit == "bytes":
            elapsed = max(time.monotonic() - self.started, 1e-6)
            amount = f"{human_bytes(self.done)}/{human_bytes(total or 0)} {human_bytes(self.done / elapsed)}/s"
        else:
            amount = f"{self.done}/{total if total is not None else '?'} {self.unit}"
        text = f"{self.label} [{bar}] {fraction * 100:5.1f}% {amount}"
        return f"{text} {self.note}".rstrip()

    def close(self) -> None:
        if self.enabled and self.tty and not self._closed:
            self.stream.write("\n")
            self.stream.flush()
        self._closed = True
