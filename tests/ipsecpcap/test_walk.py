"""The classic-pcap record walk in C (ipsecpcap._walk) against its pure-Python version.

Both must find the same records with the same offsets, lengths and timestamp
bits, and stop at the same position, on every classic-pcap fixture read in
blocks of several sizes (so records straddle the reads), and the whole
analysis must come out the same with the C module, with the Python walk, and
with neither the C walk nor the C row gather (the fallback of a build without
a compiler).  tests/ipsecpcap/test_reader.py runs all its reader tests with
both walks too.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ipsecpcap.vector as vector
from ipsecpcap.analysis import Analysis, analyze_capture
from ipsecpcap.reader import _cwalk, open_capture

try:
    from reference import ROOT, all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import ROOT, all_captures

pytestmark = pytest.mark.skipif(_cwalk is None, reason="ipsecpcap._walk is not built here")

PCAPS = [c.path for c in all_captures() if c.path.read_bytes()[:4] in (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
    b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")]


def blocks(path, block_bytes, pure, monkeypatch):
    if pure:
        monkeypatch.setenv("IPSECPCAP_PUREWALK", "1")
    else:
        monkeypatch.delenv("IPSECPCAP_PUREWALK", raising=False)
    out = []
    with open_capture(path, block_bytes=block_bytes) as r:
        assert r._fmt.use_c is not pure
        for b in r:
            arrays = tuple(np.asarray(a).tobytes() for a in b.arrays) if b.arrays is not None else None
            out.append((len(b.data), arrays, b.offsets, b.caplens, b.origlens, [t.hex() for t in b.ts],
                        b.frames, b.bad))
        out.append(tuple(r.warnings))
    return out


def test_there_are_classic_pcaps():
    assert len(PCAPS) > 100


@pytest.mark.parametrize("block_bytes", [64, 1000, 4 << 20])
def test_c_walk_equals_python_walk_on_every_fixture(block_bytes, monkeypatch):
    for path in PCAPS:
        assert blocks(path, block_bytes, False, monkeypatch) == blocks(path, block_bytes, True, monkeypatch), path


def test_walk_arguments_are_checked():
    buf = bytes(40)
    small = np.empty(1, np.int64)
    with pytest.raises(ValueError):
        _cwalk.walk(buf, 0, 16, False, 1e6, small, small, small, np.empty(1))
    with pytest.raises(ValueError):
        _cwalk.walk(buf, 0, 8, False, 1e6, *(np.empty(9, np.int64) for _ in range(3)), np.empty(9))
    with pytest.raises(ValueError):
        _cwalk.heads(buf, np.zeros(3, np.int64), 50, np.empty(10, np.uint8))


def test_heads_zero_fills_past_the_buffer():
    out = np.empty((3, 4), np.uint8)
    _cwalk.heads(bytes(range(10)), np.array([0, 8, 20], np.int64), 4, out)
    assert out.tolist() == [[0, 1, 2, 3], [8, 9, 0, 0], [0, 0, 0, 0]]


def analysis(path):
    a = Analysis(analyze_capture(path, block_bytes=4096, vector=True))
    return {name: [dataclasses.asdict(r) for r in getattr(a, name)]
            for name in ("exchanges", "ike", "sas", "child_sas", "flows")} | {"acc": a.accounting.to_dict()}


def test_analysis_without_the_c_module_is_the_same(monkeypatch):
    paths = [p for p in PCAPS if p.stat().st_size > 20000][:12] + sorted((ROOT / "fixtures" / "synthetic").glob("*.pcap"))
    with_c = [analysis(p) for p in paths]
    monkeypatch.setenv("IPSECPCAP_PUREWALK", "1")
    monkeypatch.setattr(vector, "_cwalk", None)  # the column-by-column numpy gather
    assert [analysis(p) for p in paths] == with_c
