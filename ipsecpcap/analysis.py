"""The library entry point: read captures, decode, track, build the tables.

    >>> from ipsecpcap.analysis import analyze
    >>> a = analyze(["fixtures/public/zeek-spicy-ipsec/ipsec.cap"])
    >>> [r.spi for r in a.sas]

Each capture is analysed into its own partial result (a
:class:`~ipsecpcap.tracker.Tracker`); partials merge in time order.  The
tables are built once, from the merged tracker, on first access.
"""
from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, wraps
from typing import TYPE_CHECKING

from .decode import Decoder, KeyedDecoder
from .errors import InputError
from .reader import CaptureError, open_capture
from .lifecycle import Timeline, child_sa_rows, timeline
from .records import ChildSaRow, ExchangeRow, FindingRow, FlowRow, IkeSaRow, SaRow
from .tables import IkeView, flow_table, ike_tables, sa_table
from .tracker import Tracker
from .vector import VectorDecoder
from .ikesa import addr_text

if TYPE_CHECKING:  # keys and ESP decryption are imported when keys are given
    from .keymodel import KeyStore
    from .sacrypto import SaCrypto


def capture_name(path) -> str:
    if path == "-":
        return "-"
    return os.path.basename(os.fspath(path))


def analyze_capture(path, *, block_bytes: int = 4 << 20, progress=None, crypto: SaCrypto | None = None,
                    vector: bool | None = None, keep_ike_ciphertext: bool = True) -> Tracker:
    """Analyse one capture into a partial result.

    ``progress``, if given, is called with the reader after each block.
    ``crypto``, if given, opens ESP and verifies AH with its keys (and keeps
    per-SA results in its own state, shared across captures).  ``vector``
    chooses the vectorised fast path (:mod:`ipsecpcap.vector`, the default;
    with keys :class:`~ipsecpcap.vector.KeyedClassifier`) or the frame-by-frame
    decoder (``False``; also forced by
    the environment variable ``IPSECPCAP_FASTPATH=packet``); both give the
    same result.  ``keep_ike_ciphertext`` off drops the bytes of the IKE
    messages nothing reads without IKE keys (see :meth:`Tracker.ike`).
    Raises :class:`InputError` when the file cannot be read as a capture.
    """
    tracker = Tracker(capture_name(path), keep_ike_ciphertext)
    if vector is None:
        vector = os.environ.get("IPSECPCAP_FASTPATH", "vector") != "packet"
    if vector:
        decoder = VectorDecoder(tracker, crypto=crypto)
    elif crypto is not None:
        decoder = KeyedDecoder(tracker, crypto)
    else:
        decoder = Decoder(tracker)
    try:
        with open_capture(path, block_bytes=block_bytes) as reader:
            run_block = decoder.run_block
            for block in reader:
                run_block(block)
                span = block.span()  # (a Simple Packet Block's 0.0 says nothing of the span)
                if span is not None:
                    lo, hi = span
                    tracker.first_ts = lo if tracker.first_ts is None else min(tracker.first_ts, lo)
                    tracker.last_ts = hi if tracker.last_ts is None else max(tracker.last_ts, hi)
                if progress is not None:
                    progress(reader)
            tracker.frames = reader.frames
            tracker.capture_reads = [(reader.frames, tracker.first_ts, tracker.last_ts)]
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


@contextmanager
def _young_collections_only():
    """While the packets are read, and while a table is built, the cyclic garbage collector
    looks at young objects only, and less often.  What the tracker keeps lives to the end,
    and every full collection walks all of it again (three on the 1M-packet capture, ~0.1-0.2
    s, freeing nothing); and a young collection every 700 new objects (the default) took
    0.09 s of the 1M capture and 0.4 s of the 5M one, every 50,000 0.03 s and 0.16 s (no
    change in peak memory: what dies young dies by reference counting).  The tables, the
    rules and the summary after the read of the 5M capture took 1.24-1.83 s of CPU with the
    default thresholds, 0.92-0.95 s with these.  Cycles that die young are still collected.
    The thresholds are restored afterwards."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 50_000), threshold[1], 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _release_free_memory() -> None:
    """Give the pages that the read freed back to the system (glibc's ``malloc_trim``).

    The batches' numpy arrays come from the C heap, between what the tracker keeps, so
    their memory stays in the heap when they are freed: after the read of the 5M
    benchmark capture the heap held 60 MB, 38 MB of it free, all of it resident.  The
    tables and rules allocate elsewhere (Python's own arenas), so that memory was never
    used again, and the peak came after the read: trimmed, the 5M capture peaked at 129 MB
    instead of 157 (the 1M one at 83 instead of 93, its read's own peak).  One call of a
    few milliseconds; nothing where the C library is not glibc."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc; TypeError: Windows has no CDLL(None)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _young_only(fn):
    """``fn`` run under :func:`_young_collections_only` (the tables of :class:`Analysis`)."""
    @wraps(fn)
    def run(*args, **kwargs):
        with _young_collections_only():
            return fn(*args, **kwargs)
    return run


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

    def __init__(self, tracker: Tracker, keys: KeyStore | None = None, crypto: SaCrypto | None = None,
                 policy=None, rules=None):
        self.tracker = tracker
        self.keys = keys
        self.crypto = crypto
        self.policy = policy  # an ipsecpcap.policy.Policy, or None
        self.rule_dirs = list(rules or [])  # extra rule directories (--rules)

    @cached_property
    @_young_only
    def findings(self) -> list[FindingRow]:
        """What the rule pack found (``ipsecpcap.rules``), most severe first.
        Rules that need a policy run only when one was given."""
        from .rules.engine import evaluate, load_rules

        return evaluate(load_rules(self.rule_dirs), self)

    @cached_property
    @_young_only
    def _ike(self) -> IkeView:
        return ike_tables(self.tracker, self.keys)

    @cached_property
    def cleartext_esp(self) -> set[tuple[str, str, str]]:
        """ESP SA directions ("0x<spi>", src, dst) whose first packet reads as NULL-encrypted
        (:mod:`ipsecpcap.nullesp`): for SAs whose algorithm no key or negotiation tells."""
        from .nullesp import cleartext_sas

        return cleartext_sas(self.tracker.esp_samples)

    @property
    def ike_view(self) -> IkeView:
        """The IKE side as the tables were built from it: the IKE SA groups and each
        message's payloads, decrypted ones included (for rules that look at payloads)."""
        return self._ike

    @property
    def exchanges(self) -> list[ExchangeRow]:
        return self._ike.exchanges

    @property
    def ike(self) -> list[IkeSaRow]:
        return self._ike.ike

    @cached_property
    @_young_only
    def sas(self) -> list[SaRow]:
        return sa_table(self.tracker, self.crypto, self._ike.child_algorithms, self._ike.lifecycle)

    @cached_property
    @_young_only
    def child_sas(self) -> list[ChildSaRow]:
        """One row per child SA (both directions), including those seen only in
        decrypted IKE (e.g. the redundant SA of a rekey collision) or only as an
        answered exchange that never carried a packet."""
        return child_sa_rows(self._ike.lifecycle)

    @_young_only
    def timeline(self) -> Timeline:
        """The SA timeline: one bar per IKE SA and per child SA direction,
        and the establish / rekey / delete / collision events."""
        return timeline(self._ike.lifecycle)

    def key_report(self) -> list[dict]:
        """For each key given: where it came from and what it verified on.
        Keys appear by fingerprint only."""
        if self.keys is None:
            return []
        out = []
        esp_hits: dict[int, list[str]] = {}
        if self.crypto is not None:
            for (proto, spi, addrs), st in self.crypto.states.items():
                if st.key is not None and st.decrypted:
                    h = len(addrs) >> 1
                    esp_hits.setdefault(id(st.key), []).append(
                        f"{'esp' if proto == 50 else 'ah'} 0x{spi:08x} {addr_text(addrs[:h])} > {addr_text(addrs[h:])}")
        for k in self.keys.esp:
            out.append({"key": k.fingerprint, "source": str(k.source) if k.source else None, "kind": k.protocol,
                        "spi": None if k.spi is None else f"0x{k.spi:08x}", "enc": k.enc, "integ": k.integ,
                        "verified_on": sorted(esp_hits.get(id(k), []))})
        ike_hits: dict[str, list[str]] = {}
        for r in self.ike:
            if r.key and r.decrypted:
                ike_hits.setdefault(r.key, []).append(f"ikev{r.version} {r.ispi}/{r.rspi}")
        for k in self.keys.ikev2:
            out.append({"key": k.fingerprint, "source": str(k.source) if k.source else None, "kind": "ikev2",
                        "spi": f"{k.ispi.hex()}/{k.rspi.hex()}", "enc": k.enc, "integ": k.integ,
                        "verified_on": ike_hits.get(k.fingerprint, [])})
        for k in self.keys.ikev1:
            out.append({"key": k.fingerprint, "source": str(k.source) if k.source else None, "kind": "ikev1",
                        "spi": k.icookie.hex(), "enc": None, "integ": None,
                        "verified_on": ike_hits.get(k.fingerprint, [])})
        return out

    @cached_property
    @_young_only
    def flows(self) -> list[FlowRow]:
        return flow_table(self.tracker)

    def table(self, name: str) -> list:
        """A table by name (``child-sas`` and ``child_sas`` both work); built on first use."""
        attr = name.replace("-", "_")
        if attr not in TABLE_NAMES:
            raise KeyError(name)
        return getattr(self, attr)

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
            "ike_messages": len(tr.ike_events),  # one exchanges row each: counted, not built
            "ike_sas": len(self.ike),
            "esp_sas": sum(1 for r in self.sas if r.protocol == "esp"),
            "ah_sas": sum(1 for r in self.sas if r.protocol == "ah"),
            "esp_packets": sum(r.packets for r in self.sas if r.protocol == "esp"),
            "ah_packets": sum(r.packets for r in self.sas if r.protocol == "ah"),
            "flows": len(tr.flows),  # one flows row each
            "warnings": list(tr.warnings),
            **({"keys": self.key_report(), "key_problems": list(self.keys.problems)} if self.keys is not None else {}),
        }


def analyze(paths: Iterable, *, keys=None, policy=None, rules=None, engine: str = "fast", jobs: int = 1,
            block_bytes: int = 4 << 20, progress=None) -> Analysis:
    """Analyse the captures (in the order given, which should be time order)
    and return the merged :class:`Analysis`.

    ``keys`` is a :class:`~ipsecpcap.keymodel.KeyStore` or an iterable of key
    file paths (see :func:`ipsecpcap.keys.load_keys`).  ``policy`` is a
    :class:`~ipsecpcap.policy.Policy` or the path of a policy file; ``rules``
    an iterable of extra rule directories.  ``engine`` is ``fast`` (our own
    decoder) or ``tshark`` (the same analysis over tshark's dissection, see
    :mod:`ipsecpcap.deep`).  ``jobs`` >= 2 runs the fast engine's two stages
    in two processes (:mod:`ipsecpcap.parallel`; the same result; with keys,
    one process decodes and decrypts, the other tracks).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    store = _key_store(keys)
    pol = _policy(policy)
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    crypto = None
    if store is not None and store.esp:
        from .sacrypto import SaCrypto

        crypto = SaCrypto(store)
    ike_keys = store is not None and bool(store.ikev1 or store.ikev2)  # else encrypted IKE stays unread
    merged: Tracker | None = None
    with _young_collections_only():
        for path in paths:
            merged = _analyze_one(path, merged, engine, jobs, block_bytes, progress, crypto, store, ike_keys)
    if merged is None:
        raise InputError("no capture given")
    _release_free_memory()
    return Analysis(merged, store, crypto, pol, [os.fspath(r) for r in (rules or [])])


def _analyze_one(path, merged, engine, jobs, block_bytes, progress, crypto, store, ike_keys) -> Tracker:
    """One capture analysed as :func:`analyze` asked, merged into ``merged`` (None: the first)."""
    if engine == "tshark":
        from .deep import analyze_capture_deep

        part = analyze_capture_deep(path, keys=store, progress=progress, crypto=crypto)
    elif jobs >= 2 and os.environ.get("IPSECPCAP_FASTPATH", "vector") != "packet":
        from .parallel import analyze_capture_pipelined

        part = analyze_capture_pipelined(path, block_bytes=block_bytes, progress=progress, crypto=crypto,
                                         keep_ike_ciphertext=ike_keys)
    else:
        part = analyze_capture(path, block_bytes=block_bytes, progress=progress, crypto=crypto,
                               keep_ike_ciphertext=ike_keys)
    return part if merged is None else merged.merge(part)


ENGINES = ("fast", "tshark")
TABLE_NAMES = ("exchanges", "ike", "sas", "child_sas", "flows", "findings")


def _policy(policy):
    if policy is None:
        return None
    from .policy import Policy, load_policy

    return policy if isinstance(policy, Policy) else load_policy(policy)


def _key_store(keys) -> KeyStore | None:
    if keys is None:
        return None  # (keymodel not imported: 4 ms of every start without keys)
    from .keymodel import KeyStore

    if isinstance(keys, KeyStore):
        return keys
    keys = list(keys)
    if not keys:
        return None
    from .keys import load_keys

    return load_keys(keys)
