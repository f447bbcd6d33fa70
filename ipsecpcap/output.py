"""Render table rows as text tables, JSON, JSON Lines or CSV.

Views only: they format what the records hold and decide nothing.  A file
written with ``-o`` appears whole or not at all (written to a temporary file
beside it, then renamed); one that cannot be written at all is a usage error
(exit 2).  Text tables fit the terminal (wide columns narrowed with an
ellipsis, then columns dropped and named) and colour severities on a
terminal unless NO_COLOR is set.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

FORMATS = ("table", "json", "jsonl", "csv")


def _json_default(o):
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# json.dumps with a default makes a new encoder at every call: a row of a table is
# encoded by this one (the same output; 15-20% less time over the rows of a table)
_ENCODER = json.JSONEncoder(default=_json_default)


def dumps(obj, **kw) -> str:
    if not kw:
        return _ENCODER.encode(obj)
    return json.dumps(obj, default=_json_default, **kw)


def _cell(v) -> str:
    """One value as text for CSV and terminal tables."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6f}"
    if isinstance(v, (list, tuple)):
        return ";".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return ";".join(f"{k}={_cell(x)}" for k, x in v.items())
    return str(v)


def _ts_text(v) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return _cell(v)
    return datetime.fromtimestamp(v, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


TS_FIELDS = {"ts", "first_seen", "last_seen", "created", "deleted", "established", "first_packet", "last_packet"}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _as_dict(r) -> dict:
    """A row as a dict in field order.  For a dataclass record, its fields as they
    are (``dataclasses.asdict`` would deep-copy every list and dict: slow, and
    the same JSON)."""
    if isinstance(r, dict):
        return r
    names = _FIELD_NAMES.get(type(r))
    if names is None:
        if not dataclasses.is_dataclass(r):
            return r.to_dict()
        names = _FIELD_NAMES[type(r)] = tuple(f.name for f in dataclasses.fields(r))
    return {n: getattr(r, n) for n in names}


def render_rows(rows: Sequence, fields: list[str], fmt: str, out) -> None:
    dicts = (_as_dict(r) for r in rows)
    if fmt == "json":
        out.write("[")
        for i, d in enumerate(dicts):
            out.write(",\n " if i else "\n ")
            out.write(dumps(d))
        out.write("\n]\n" if rows else "]\n")
    elif fmt == "jsonl":
        for d in dicts:
            out.write(dumps(d))
            out.write("\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(fields)
        for d in dicts:
            w.writerow([_cell(d.get(f)) for f in fields])
    elif fmt == "table":
        out.write(text_table([[(_ts_text(d.get(f)) if f in TS_FIELDS else _cell(d.get(f))) for f in fields]
                              for d in dicts], fields, width=table_width(out) or 10**6, color=use_color(out)))
    else:  # pragma: no cover - click restricts the choice
        raise ValueError(fmt)


SEVERITY_STYLES = {  # click.style arguments per severity (ipsecpcap.records.SEVERITIES)
    "critical": {"fg": "bright_red", "bold": True},
    "high": {"fg": "red"},
    "medium": {"fg": "yellow"},
    "low": {"fg": "cyan"},
    "info": {"dim": True},
}


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def use_color(stream) -> bool:
    """Colour only on a terminal, and not when NO_COLOR is set (https://no-color.org) or TERM is dumb."""
    return _isatty(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def table_width(stream) -> int | None:
    """The terminal's width when ``stream`` is a terminal, else None (no limit)."""
    return shutil.get_terminal_size((160, 24)).columns if _isatty(stream) else None


def severity_text(severity: str, color: bool, text: str | None = None) -> str:
    """``text`` (default: the severity) styled for its severity when ``color``."""
    text = severity if text is None else text
    if not color or severity not in SEVERITY_STYLES:
        return text
    import click

    return click.style(text, **SEVERITY_STYLES[severity])


def _ellipsize(s: str, n: int) -> str:
    return s if len(s) <= n else (s[: n - 1] + "…" if n > 1 else s[:n])


MIN_COLUMN = 8  # a column is not narrowed below this many characters


def text_table(rows: list[list[str]], header: list[str], max_cell: int = 48,
               width: int | None = None, color: bool = False) -> str:
    """Columns aligned to their widest cell, fitted to ``width`` (default: the
    terminal's, when standard output is one; None or no terminal: no limit).

    Cells longer than ``max_cell`` are cut with an ellipsis.  When the table is
    still wider than ``width``, the widest columns are narrowed (cells cut with
    an ellipsis) down to ``MIN_COLUMN``; columns that still do not fit are
    dropped from the right and named in a last line (use --format json or csv
    for every field).  With ``color``, a ``severity`` column is coloured.
    """
    if width is None:
        width = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 10**6
    rows = [[_ellipsize(c, max_cell) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    floor = [min(w, MIN_COLUMN) for w in widths]

    def total(ws):
        return sum(ws) + 2 * (len(ws) - 1) if ws else 0

    # narrow the widest columns, one character at a time, while any can give
    while total(widths) > width:
        i = max(range(len(widths)), key=lambda j: (widths[j] - floor[j] > 0, widths[j]))
        if widths[i] <= floor[i]:
            break
        widths[i] -= 1
    keep, used = [], 0
    for i, w in enumerate(widths):
        if used + w + (2 if keep else 0) > width and keep:
            break
        keep.append(i)
        used += w + (2 if len(keep) > 1 else 0)
    sev = header.index("severity") if color and "severity" in header else None

    def line(cells, styled: bool) -> str:
        out = []
        for i in keep:
            text = _ellipsize(cells[i], widths[i]).ljust(widths[i])
            if styled and i == sev:
                text = severity_text(cells[i].strip(), True, text)
            out.append(text)
        return "  ".join(out).rstrip()

    buf = io.StringIO()
    buf.write(line(header, False) + "\n")
    for r in rows:
        buf.write(line(r, True) + "\n")
    if len(keep) < len(header):
        buf.write(f"({len(header) - len(keep)} more columns not shown: "
                  f"{', '.join(header[len(keep):])}; use --format json or csv)\n")
    return buf.getvalue()


def _exchange(a: str, b: str) -> bool:
    """Swap the names of two existing files at once (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where that cannot be done (another system, an old
    C library or kernel, a file system without it), nothing changed then.

    Why not ``os.replace`` over the old file: ext4 (its ``auto_da_alloc`` default)
    takes a rename over an existing file as a replace-by-rename and writes the new
    file out to disk before the rename returns -- 0.15-0.25 s for the 300 MB of a
    decrypted benchmark capture, with the disk's writeback still running when the
    next replacement drops those pages (which then waits for it).  Exchanging the
    names and removing the old file is as atomic for readers of the path (they see
    the old file or the new one, whole) and took 0.02-0.04 s."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def output_stream(path: str | None, binary: bool = False) -> Iterator:
    """Standard output, or a file that appears only when complete.  A path that is not a
    regular file (``/dev/null``, a named pipe, a terminal) is written to as it is: putting a
    file in its place would replace the device."""
    if path is None or path == "-":
        yield sys.stdout.buffer if binary else sys.stdout
        return
    try:
        special = not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # not there yet (or not reachable: the temporary file will say why)
        special = False
    if special:
        try:
            f = open(path, "wb") if binary else open(path, "w", encoding="utf-8", newline="")
        except OSError as e:
            from .errors import UsageError

            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        with f:
            yield f
        return
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ipsecpcap-", dir=d)
    except OSError as e:
        from .errors import UsageError

        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # an ordinary file, not mkstemp's 0600
        if not (os.path.lexists(path) and _exchange(tmp, path)):
            os.replace(tmp, path)
        else:
            os.unlink(tmp)  # the file it replaced, now under the temporary name
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
