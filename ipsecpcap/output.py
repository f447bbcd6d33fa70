"""Render table rows as text tables, JSON, JSON Lines or CSV.

Views only: they format what the records hold and decide nothing.  A file
written with ``-o`` appears whole or not at all (written to a temporary file
beside it, then renamed).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
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


def dumps(obj, **kw) -> str:
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


def render_rows(rows: Sequence, fields: list[str], fmt: str, out) -> None:
    dicts = (r.to_dict() if hasattr(r, "to_dict") else r for r in rows)
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
                              for d in dicts], fields))
    else:  # pragma: no cover - click restricts the choice
        raise ValueError(fmt)


def text_table(rows: list[list[str]], header: list[str], max_cell: int = 48,
               width: int | None = None) -> str:
    """Columns aligned to their widest cell; long cells are cut with an ellipsis.
    Columns that do not fit the terminal width are dropped from the right and
    named in a last line (use --format json or csv for every field)."""
    if width is None:
        width = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 10**6

    def cut(s: str) -> str:
        return s if len(s) <= max_cell else s[: max_cell - 1] + "…"

    rows = [[cut(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    keep, used = [], 0
    for i, w in enumerate(widths):
        if used + w + (2 if keep else 0) > width and keep:
            break
        keep.append(i)
        used += w + (2 if len(keep) > 1 else 0)
    buf = io.StringIO()
    buf.write("  ".join(header[i].ljust(widths[i]) for i in keep).rstrip() + "\n")
    for r in rows:
        buf.write("  ".join(r[i].ljust(widths[i]) for i in keep).rstrip() + "\n")
    if len(keep) < len(header):
        buf.write(f"({len(header) - len(keep)} more columns not shown: "
                  f"{', '.join(header[len(keep):])}; use --format json or csv)\n")
    return buf.getvalue()


@contextlib.contextmanager
def output_stream(path: str | None, binary: bool = False) -> Iterator:
    """Standard output, or a file that appears only when complete."""
    if path is None or path == "-":
        yield sys.stdout.buffer if binary else sys.stdout
        return
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ipsecpcap-", dir=d)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
