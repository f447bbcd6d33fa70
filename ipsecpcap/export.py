"""Exports: every table as Parquet, JSON Lines or CSV, and the output directory
of ``ipsecpcap analyze -o DIR``.

Views only.  JSON Lines and CSV are written from the records exactly as the
table commands print them with ``--format jsonl`` / ``--format csv`` (epoch
seconds, lists in CSV as ``a;b``); Parquet from the DataFrames of
:mod:`ipsecpcap.dataframes` (typed columns, read back with
:func:`ipsecpcap.dataframes.read_parquet`).

No file is ever left half-written: each is written to a temporary name in
the same directory and renamed into place when complete.  The output
directory is filled the same way as a whole: every file is made in a
temporary directory inside it first and moved in only when all of them are
done, so a failed run adds nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from . import __version__
from .errors import UsageError
from .output import dumps, output_stream, render_rows
from .records import SCHEMA_VERSION, SEVERITIES

TABLE_FORMATS = ("parquet", "jsonl", "csv")
EXTENSIONS = {"parquet": ".parquet", "jsonl": ".jsonl", "csv": ".csv"}


def _records(analysis):
    """The record-level analysis of either view."""
    return getattr(analysis, "records", analysis)


def _frame(analysis, name: str):
    """One table as a DataFrame: the DataFrame view's own (built once, kept), else built
    for this write only and not kept (the output directory of a long capture held every
    table's DataFrame at once: 5M benchmark packets, 372 MB peak RSS after the Parquet
    files)."""
    from .dataframes import Analysis, table_frame

    return analysis.table(name) if isinstance(analysis, Analysis) else table_frame(analysis, name)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """A temporary file name beside ``path``, renamed to ``path`` when the block
    ends without an exception and removed when it raises."""
    path = os.fspath(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ipsecpcap-", dir=os.path.dirname(os.path.abspath(path)))
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # as an ordinary file, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_file(path) -> None:
    """Fail early (before a long analysis) when ``path`` cannot be written."""
    path = os.fspath(path)
    if path == "-":
        return
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise UsageError(f"cannot write {path}: no such directory {d}")
    if not os.access(d, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: permission denied")


def check_output_dir(directory) -> None:
    """Make ``directory`` if missing; fail early when it cannot be written."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write to {os.fspath(directory)}: {e.strerror or e}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {os.fspath(directory)}: permission denied")


def table_fields(name: str) -> list[str]:
    from .dataframes import SCHEMAS

    return list(SCHEMAS[name])


def write_table(analysis, name: str, fmt: str, path) -> str:
    """Write one table in one format (``parquet``, ``jsonl``, ``csv``) to ``path``."""
    from .dataframes import table_rows

    if fmt == "parquet":
        import pyarrow.parquet as pq

        from .dataframes import arrow_table

        table = arrow_table(_frame(analysis, name), name)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    elif fmt in ("jsonl", "csv"):
        rows = table_rows(_records(analysis), name)
        with output_stream(os.fspath(path)) as out:
            render_rows(rows, table_fields(name), fmt, out)
    else:
        raise ValueError(f"unknown table format {fmt!r} (choose from {', '.join(TABLE_FORMATS)})")
    return os.fspath(path)


def write_tables(analysis, directory, formats=("parquet",)) -> list[str]:
    """Write ``<table>.<ext>`` for every table and every format into
    ``directory`` (made if missing); returns the paths written."""
    from .dataframes import TABLE_NAMES

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write to {os.fspath(directory)}: {e.strerror or e}") from None
    written = []
    for fmt in formats:
        for name in TABLE_NAMES:
            written.append(write_table(analysis, name, fmt, os.path.join(directory, name + EXTENSIONS[fmt])))
    return written


# ------------------------------------------------------------ capture facts
class _HashingStream:
    """A binary file that hashes what is read through it."""

    def __init__(self, f):
        self._f = f
        self.name = f.name
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha256.update(data)
        return data

    def fileno(self) -> int:
        return self._f.fileno()

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def capture_facts(paths, records=None) -> list[dict]:
    """For each capture as given: name, size, SHA-256 of the file (as stored,
    compressed or not), frames and time span, read in one pass of its own.
    When the analysis ``records`` read the captures itself (the fast engine
    notes frames and span per capture, ``Tracker.capture_reads``), the
    frames and span are its own and the file is only hashed: its records
    need not be walked a second time.

    Standard input cannot be read again: it is not hashed, and its frames and
    time span are the analysis's own when it was the only capture."""
    out = []
    paths = list(paths)
    reads = getattr(getattr(records, "tracker", None), "capture_reads", None)
    if reads is not None and len(reads) != len(paths):
        reads = None  # not the analysis of these captures, one for one
    for i, p in enumerate(paths):
        p = os.fspath(p)
        if p == "-":
            facts = {"name": "-", "path": "-", "size": None, "sha256": None, "frames": None,
                     "first_seen": None, "last_seen": None, "note": "standard input: read once, not hashed"}
            if records is not None and len(paths) == 1:
                tr = records.tracker
                facts.update(frames=tr.frames, first_seen=tr.first_ts, last_seen=tr.last_ts)
            out.append(facts)
            continue
        known = reads[i] if reads is not None else None
        out.append(_file_facts(p) if known is None else _hashed_facts(p, *known))
    return out


def _hashed_facts(path: str, frames: int, first, last) -> dict:
    """The facts of a capture the analysis read: its size and SHA-256 from the file."""
    facts = {"name": os.path.basename(path), "path": path, "size": None, "sha256": None, "frames": None,
             "first_seen": None, "last_seen": None, "note": None}
    try:
        with open(path, "rb") as f:
            facts["size"] = os.fstat(f.fileno()).st_size
            facts["sha256"] = _sha256(f)
    except OSError as e:
        facts["note"] = f"cannot read: {e.strerror or e}"
        return facts
    facts.update(frames=frames, first_seen=first, last_seen=last)
    return facts


HASH_CHUNK = 8 << 20


def _sha256(f) -> str:
    """The SHA-256 of an open binary file, read in 8 MiB pieces.  Reading and hashing a
    piece let go of the interpreter lock, and a thread that hashes (see
    write_output_dir) takes it back once per piece, waiting for it while the analysis
    holds it: hashing the 3 GB benchmark capture (2.8 s alone) beside a busy Python loop
    (1.3 s alone) took 4.3 s in all in 256 KiB pieces (hashlib.file_digest's), 3.4 s in
    8 MiB ones."""
    h = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def _file_facts(path: str) -> dict:
    from .reader import CaptureError, open_capture

    facts = {"name": os.path.basename(path), "path": path, "size": None, "sha256": None, "frames": None,
             "first_seen": None, "last_seen": None, "note": None}
    try:
        with open(path, "rb") as f:
            facts["size"] = os.fstat(f.fileno()).st_size
            h = _HashingStream(f)
            lo = hi = None
            try:
                with open_capture(h) as reader:
                    for block in reader:
                        ts = block.ts
                        stamps = [t for t in ts if t] if ts and not ts[0] else ts
                        if stamps:
                            a, b = min(stamps), max(stamps)
                            lo = a if lo is None else min(lo, a)
                            hi = b if hi is None else max(hi, b)
                    facts["frames"] = reader.frames
            except CaptureError as e:
                facts["note"] = str(e)
            h.drain()
            facts.update(sha256=h.sha256.hexdigest(), first_seen=lo, last_seen=hi)
    except OSError as e:
        facts["note"] = f"cannot read: {e.strerror or e}"
    return facts


# ------------------------------------------------------------ summary / dir
def severity_counts(findings) -> dict[str, int]:
    """Findings per severity, most severe first (every severity present, 0 included)."""
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return counts


def summary_document(analysis, captures: list[dict] | None = None) -> dict:
    """``summary.json``: the summary of ``ipsecpcap analyze --format json``, the
    tool and schema versions, the findings per severity, the policy file, and
    each capture file's size, SHA-256, frames and time span when known."""
    rec = _records(analysis)
    doc = {"tool": "ipsecpcap", "version": __version__, "schema_version": SCHEMA_VERSION}
    doc.update(rec.summary())
    doc["findings"] = severity_counts(rec.findings)
    pol = rec.policy
    doc["policy"] = None if pol is None else os.fspath(getattr(pol, "source", None) or "") or None
    if captures is not None:
        doc["capture_files"] = captures
    return doc


OUTPUT_FILES = ("findings.json", "summary.json", "report.pdf")


def _stage_dir(directory) -> str:
    """A temporary directory inside ``directory`` (made if missing)."""
    try:
        os.makedirs(directory, exist_ok=True)
        return tempfile.mkdtemp(prefix=".ipsecpcap-", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write to {os.fspath(directory)}: {e.strerror or e}") from None


def write_output_dir(analysis, directory, paths=None, *, report: bool = True) -> list[str]:
    """Fill ``directory`` (made if missing) with ``<table>.parquet`` and
    ``<table>.jsonl`` for every table, ``findings.json``, ``summary.json`` and
    ``report.pdf``.  All or nothing: the files are made in a temporary
    directory inside it and moved in when every one is complete (an earlier
    run's files of the same names are replaced).  Returns the final paths."""
    rec = _records(analysis)
    paths = paths if paths is not None else getattr(analysis, "paths", None)
    stage = _stage_dir(directory)
    hashing = None
    if paths is not None:
        # The captures are hashed (SHA-256, as stored) while the tables are written: the
        # file reads and hashlib let go of the interpreter lock (see _sha256).  The 3 GB
        # benchmark capture took 3.0 s to hash, after the tables, which took 6 s.
        from concurrent.futures import ThreadPoolExecutor

        hashing = ThreadPoolExecutor(1, thread_name_prefix="ipsecpcap-hash")
        facts = hashing.submit(capture_facts, paths, rec)
    try:
        names = [os.path.basename(p) for p in write_tables(analysis, stage, ("parquet", "jsonl"))]
        with output_stream(os.path.join(stage, "findings.json")) as out:
            render_rows(rec.findings, table_fields("findings"), "json", out)
        captures = facts.result() if hashing is not None else None
        with output_stream(os.path.join(stage, "summary.json")) as out:
            out.write(dumps(summary_document(rec, captures), indent=2) + "\n")
        names += ["findings.json", "summary.json"]
        if report:
            from .report import write_report

            write_report(rec, os.path.join(stage, "report.pdf"), paths=paths, captures=captures)
            names.append("report.pdf")
        final = []
        for n in names:
            os.replace(os.path.join(stage, n), os.path.join(directory, n))
            final.append(os.path.join(os.fspath(directory), n))
        return final
    finally:
        if hashing is not None:
            hashing.shutdown(cancel_futures=True)
        shutil.rmtree(stage, ignore_errors=True)
