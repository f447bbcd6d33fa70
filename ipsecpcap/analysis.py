"""The library entry point: read captures, decode, track, build the tables.

    >>> from ipsecpcap.analysis import analyze
    >>> a = analyze(["fixtures/public/zeek-spicy-ipsec/ipsec.cap"])
    >>> [r.spi for r in a.sas]

Each capture is analysed into its own partial result (a
:class:`~ipsecpcap.tracker.Tracker`); partials merge in time order.  The
tables are built once, from the merged tracker, on first access.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from .decode import Decoder
from .errors import InputError
from .reader import CaptureError, open_capture
from .records import ExchangeRow, FlowRow, IkeSaRow, SaRow
from .tables import flow_table, ike_tables, sa_table
from .tracker import Tracker


def capture_name(path) -> str:
    if path == "-":
        return "-"
    return os.path.basename(os.fspath(path))


def analyze_capture(path, *, block_bytes: int = 4 << 20, progress=None) -> Tracker:
    """Analyse one capture into a partial result.

    ``progress``, if given, is called with the reader after each block.
    Raises :class:`InputError` when the file cannot be read as a capture.
    """
    tracker = Tracker(capture_name(path))
    decoder = Decoder(tracker)
    try:
        with open_capture(path, block_bytes=block_bytes) as reader:
            run_block = decoder.run_block
            for block in reader:
                run_block(block)
                # a Simple Packet Block has no timestamp (0.0): it says nothing of the span
                stamps = [t for t in block.ts if t] if block.ts and not block.ts[0] else block.ts
                if stamps:
                    lo, hi = min(stamps), max(stamps)
                    tracker.first_ts = lo if tracker.first_ts is None else min(tracker.first_ts, lo)
                    tracker.last_ts = hi if tracker.last_ts is None else max(tracker.last_ts, hi)
                if progress is not None:
                    progress(reader)
            tracker.frames = reader.frames
            tracker.warnings.extend(f"{reader.name}: {w}" for w in reader.warnings)
    except CaptureError as e:
        raise InputError(str(e)) from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a capture") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    decoder.finish()
    tracker.counts = decoder.counts
    tracker.reassembly = decoder.reasm.stats()
    return tracker


@dataclass(frozen=True, slots=True)
class Accounting:
    """Where every frame went.  ``analysed + skipped + malformed == frames``."""

    frames: int
    analysed: int
    skipped: int
    malformed: int
    by_category: dict[str, int]  # "analysed:esp" -> n, "skipped:<reason>" -> n, ...
    reassembly: dict[str, int]
    nat_keepalives: int

    def to_dict(self) -> dict:
        return {"frames": self.frames, "analysed": self.analysed, "skipped": self.skipped,
                "malformed": self.malformed, "by_category": dict(self.by_category),
                "reassembly": dict(self.reassembly), "nat_keepalives": self.nat_keepalives}


class Analysis:
    """The merged result of one or more captures."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    @cached_property
    def _ike(self) -> tuple[list[ExchangeRow], list[IkeSaRow]]:
        return ike_tables(self.tracker)

    @property
    def exchanges(self) -> list[ExchangeRow]:
        return self._ike[0]

    @property
    def ike(self) -> list[IkeSaRow]:
        return self._ike[1]

    @cached_property
    def sas(self) -> list[SaRow]:
        return sa_table(self.tracker)

    @cached_property
    def flows(self) -> list[FlowRow]:
        return flow_table(self.tracker)

    def table(self, name: str) -> list:
        return {"exchanges": self.exchanges, "ike": self.ike, "sas": self.sas, "flows": self.flows}[name]

    @cached_property
    def accounting(self) -> Accounting:
        tr = self.tracker
        status = {"analysed": 0, "skipped": 0, "malformed": 0}
        for cat, n in tr.counts.items():
            status[cat.split(":", 1)[0]] += n
        return Accounting(tr.frames, status["analysed"], status["skipped"], status["malformed"],
                          dict(sorted(tr.counts.items())), dict(tr.reassembly),
                          sum(e[0] for e in tr.keepalives.values()))

    def summary(self) -> dict:
        tr = self.tracker
        acc = self.accounting
        return {
            "captures": list(tr.captures),
            "frames": acc.frames,
            "accounting": acc.to_dict(),
            "first_seen": tr.first_ts,
            "last_seen": tr.last_ts,
            "duration": (tr.last_ts - tr.first_ts) if tr.first_ts is not None else 0.0,
            "ike_messages": len(self.exchanges),
            "ike_sas": len(self.ike),
            "esp_sas": sum(1 for r in self.sas if r.protocol == "esp"),
            "ah_sas": sum(1 for r in self.sas if r.protocol == "ah"),
            "esp_packets": sum(r.packets for r in self.sas if r.protocol == "esp"),
            "ah_packets": sum(r.packets for r in self.sas if r.protocol == "ah"),
            "flows": len(self.flows),
            "warnings": list(tr.warnings),
        }


def analyze(paths: Iterable, *, block_bytes: int = 4 << 20, progress=None) -> Analysis:
    """Analyse the captures (in the order given, which should be time order)
    and return the merged :class:`Analysis`."""
    merged: Tracker | None = None
    for path in paths:
        part = analyze_capture(path, block_bytes=block_bytes, progress=progress)
        merged = part if merged is None else merged.merge(part)
    if merged is None:
        raise InputError("no capture given")
    return Analysis(merged)
