"""The progress bar of the command line, on standard error.

:func:`ipsecpcap.analysis.analyze` calls ``progress(reader)`` after each
block it reads (4 MiB by default); :class:`ProgressBar` is such a callback.
From the reader it takes ``name``, ``frames`` and, when the reader has them,
``bytes_read`` (bytes of the file consumed so far; compressed bytes for a
gzip capture) and ``size`` (the file's size, None for a pipe).  The bar
shows the bytes read of the total when every capture's size is known, else
the bytes and frames read so far, and the packet rate.

It draws at most every ``interval`` seconds, only on a terminal (see
:func:`progress_bar`), and :meth:`ProgressBar.close` erases it, so nothing of
it is left between the command's output lines.  A view only: it decides
nothing and never raises into the analysis.
"""
from __future__ import annotations

import os
import shutil
import sys
import time


def _size(path) -> int | None:
    if path == "-":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _duration(s: float) -> str:
    s = int(s + 0.5)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressBar:
    """A one-line progress display for ``analyze(progress=...)``."""

    BAR = 24  # cells of the bar

    def __init__(self, captures, stream=None, *, clock=time.monotonic, width: int | None = None,
                 interval: float = 0.1):
        captures = [os.fspath(c) for c in captures]
        sizes = [_size(c) for c in captures]
        self.total: int | None = None if any(s is None for s in sizes) else sum(sizes)
        self.captures = len(captures)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.width = width
        self.interval = interval
        self.start = clock()
        self._last_draw: float | None = None
        self._readers: dict[int, list] = {}  # id(reader) -> [reader, bytes, frames]
        self._drawn = 0  # length of the line on screen
        self.line = ""

    # the callback
    def __call__(self, reader) -> None:
        try:
            entry = self._readers.get(id(reader))
            if entry is None:
                entry = self._readers[id(reader)] = [reader, 0, 0]  # the reference keeps the id unique
            b = getattr(reader, "bytes_read", None)
            entry[1] = b if isinstance(b, int) else entry[1]
            entry[2] = getattr(reader, "frames", 0) or 0
            now = self.clock()
            if self._last_draw is not None and now - self._last_draw < self.interval:
                return
            self._last_draw = now
            self.draw(self.render(getattr(reader, "name", ""), now))
        except Exception:  # noqa: BLE001 - a display problem never stops the analysis
            pass

    @property
    def bytes_read(self) -> int:
        return sum(e[1] for e in self._readers.values())

    @property
    def frames(self) -> int:
        return sum(e[2] for e in self._readers.values())

    def render(self, name: str, now: float) -> str:
        """The line for the current state (without control characters)."""
        elapsed = max(now - self.start, 1e-9)
        done, frames = self.bytes_read, self.frames
        rate = f"{frames / elapsed:,.0f} packets/s" if now > self.start else ""
        which = f"{len(self._readers)}/{self.captures} " if self.captures > 1 else ""
        label = f"ipsecpcap: {which}{os.path.basename(name or '')}"
        if self.total:
            frac = min(done / self.total, 1.0)
            full = int(frac * self.BAR)
            bar = "#" * full + "." * (self.BAR - full)
            eta = f"{_duration(elapsed * (1 - frac) / frac)} left" if 0 < frac < 1 else ""
            parts = [label, f"[{bar}] {frac * 100:3.0f}%", f"{_bytes(done)} / {_bytes(self.total)}",
                     f"{frames:,} frames", rate, eta]
        else:
            parts = [label, f"{_bytes(done)} read" if done else "", f"{frames:,} frames", rate]
        return "  ".join(p for p in parts if p)

    def _columns(self) -> int:
        """The width of the terminal standard error is on (standard output may be a pipe)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size((80, 24)).columns

    def draw(self, line: str) -> None:
        width = self.width or self._columns()
        line = line[: max(width - 1, 10)]
        self.stream.write("\r" + line + (" " * (self._drawn - len(line)) if self._drawn > len(line) else ""))
        self.stream.flush()
        self._drawn = len(line)
        self.line = line

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        if self._drawn:
            try:
                self.stream.write("\r\033[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self._drawn = 0


def enabled(stream=None, quiet: bool = False) -> bool:
    """A bar is drawn only on a terminal, without ``--quiet``, and not on a dumb terminal."""
    stream = stream if stream is not None else sys.stderr
    if quiet or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(captures, quiet: bool = False, stream=None) -> ProgressBar | None:
    """The command line's progress callback, or None where no bar is drawn."""
    stream = stream if stream is not None else sys.stderr
    return ProgressBar(captures, stream) if enabled(stream, quiet) else None
