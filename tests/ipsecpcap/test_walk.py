"""The record walks in C (ipsecpcap._walk: classic pcap, and runs of pcapng
Enhanced Packet Blocks) against their pure-Python versions.

Both must find the same records with the same offsets, lengths and timestamp
bits, and stop at the same position, on every classic-pcap and every pcapng
fixture read in blocks of several sizes (so records straddle the reads), and
the whole analysis must come out the same with the C module, with the Python
walk, and with neither the C walk nor the C row gather (the fallback of a
build without a compiler).  tests/ipsecpcap/test_reader.py runs all its reader
tests with both walks too.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ipsecpcap.vector as vector
from ipsecpcap.analysis import Analysis, analyze_capture
from ipsecpcap.reader import ArrayBlock, _cwalk, open_capture

try:
    from reference import ROOT, all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import ROOT, all_captures

pytestmark = pytest.mark.skipif(_cwalk is None, reason="ipsecpcap._walk is not built here")

PCAPS = [c.path for c in all_captures() if c.path.read_bytes()[:4] in (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
    b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")]


def _format(path) -> str | None:
    with open_capture(path) as r:
        return r.format


# every pcapng fixture, gzip-compressed ones too
PCAPNGS = [c.path for c in all_captures() if _format(c.path) == "pcapng"]


def _read(path, block_bytes, pure, monkeypatch, describe):
    """What ``describe`` says of every block the reader delivers with the C walk or
    (``pure``) the Python one, then the warnings and the frame count."""
    if pure:
        monkeypatch.setenv("IPSECPCAP_PUREWALK", "1")
    else:
        monkeypatch.delenv("IPSECPCAP_PUREWALK", raising=False)
    with open_capture(path, block_bytes=block_bytes) as r:
        assert r._fmt.use_c is not pure
        out = [describe(b) for b in r]
        out.append((tuple(r.warnings), r.frames))
    return out


def blocks(path, block_bytes, pure, monkeypatch):
    """Classic pcap: the blocks' arrays too (both walks make them)."""
    def describe(b):
        arrays = tuple(np.asarray(a).tobytes() for a in b.arrays) if b.arrays is not None else None
        return (len(b.data), arrays, b.offsets, b.caplens, b.origlens, [t.hex() for t in b.ts], b.frames, b.bad)
    return _read(path, block_bytes, pure, monkeypatch, describe)


def test_there_are_classic_pcaps():
    assert len(PCAPS) > 100


def test_there_are_pcapngs():
    assert len(PCAPNGS) >= 15


@pytest.mark.parametrize("block_bytes", [64, 1000, 4 << 20])
def test_c_walk_equals_python_walk_on_every_fixture(block_bytes, monkeypatch):
    for path in PCAPS:
        assert blocks(path, block_bytes, False, monkeypatch) == blocks(path, block_bytes, True, monkeypatch), path


def records(path, block_bytes, pure, monkeypatch):
    """pcapng: every block's records as lists (a block walked in Python has no arrays),
    link types and span."""
    def describe(b):
        return (len(b.data), b.offsets, b.caplens, b.origlens, [t.hex() for t in b.ts], b.frames, b.bad,
                [b.linktype(i) for i in range(len(b.offsets))], b.span())
    return _read(path, block_bytes, pure, monkeypatch, describe)


@pytest.mark.parametrize("block_bytes", [64, 1000, 4 << 20])
def test_c_walk_equals_python_walk_on_every_pcapng_fixture(block_bytes, monkeypatch):
    for path in PCAPNGS:
        assert records(path, block_bytes, False, monkeypatch) == records(path, block_bytes, True, monkeypatch), path


def _mixed_pcapng(o: str) -> bytes:
    """Everything the C walk leaves to Python, between runs of EPBs it takes: several
    interfaces in one run (microseconds, 2^-10 s with an offset, nanoseconds since
    1970, past 2**53), an SPB, an obsolete PB, an EPB of an undefined interface, an EPB
    whose captured length overruns it, a statistics block, a new section."""
    from test_reader import PKTS, block, epb, idb, isb, pb, shb, spb

    ns = 1_700_000_000_123_456_789
    return b"".join([
        shb(o), idb(o, 1), idb(o, 101, tsresol=0x80 | 10, tsoffset=1000), idb(o, 1, tsresol=9),
        *(epb(o, i % 3, [1_700_000_000_123_456, 7 * 1024 + 3, ns + i][i % 3], PKTS[i % 3]) for i in range(9)),
        spb(o, 100, PKTS[0]),
        epb(o, 0, 5, PKTS[1]), pb(o, 1, 6, PKTS[2]), epb(o, 7, 8, PKTS[0]),  # interface 7: not described
        epb(o, 0, 9, PKTS[1], caplen=500), isb(o, 0, 10),
        *(epb(o, 2, ns + 100 + i, PKTS[i % 3]) for i in range(5)),
        shb(o), idb(o, 1),
        *(epb(o, 0, 1_700_000_100_000_000 + i, PKTS[i % 3]) for i in range(5)),
        block(o, 6, b"short"),  # an EPB too short for its own header
    ])


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("block_bytes", [64, 200, 1000, 4 << 20])
def test_c_walk_equals_python_walk_on_mixed_pcapng(tmp_path, monkeypatch, order, block_bytes):
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(_mixed_pcapng(order))
    c = records(path, block_bytes, False, monkeypatch)
    assert c == records(path, block_bytes, True, monkeypatch)
    assert c[-1][1] == 25  # every frame counted, the two bad EPBs and the short one included
    assert sum(len(b[6]) for b in c[:-1]) == 3


def test_pcapng_epb_runs_come_as_arrays(tmp_path, monkeypatch):
    """A block of EPBs of one link type, nothing skipped, is an ArrayBlock (the vectorised
    path takes its arrays as they are); with several link types it is a plain Block."""
    from test_reader import PKTS, epb, idb, shb

    monkeypatch.delenv("IPSECPCAP_PUREWALK", raising=False)
    one = shb("<") + idb("<", 1) + b"".join(epb("<", 0, 10**15 + i, PKTS[i % 3]) for i in range(50))
    (tmp_path / "one.pcapng").write_bytes(one)
    with open_capture(tmp_path / "one.pcapng") as r:
        (b,) = list(r)
    assert isinstance(b, ArrayBlock) and b.linktypes == 1 and b.frames == list(range(1, 51))
    assert np.array_equal(b.frame_array(), np.arange(1, 51)) and b.ts[3] == (10**15 + 3) / 10**6
    two = shb("<") + idb("<", 1) + idb("<", 101) + epb("<", 0, 1, PKTS[0]) + epb("<", 1, 2, PKTS[1])
    (tmp_path / "two.pcapng").write_bytes(two)
    with open_capture(tmp_path / "two.pcapng") as r:
        (b,) = list(r)
    assert not isinstance(b, ArrayBlock) and b.linktypes == [1, 101]


def test_walk_arguments_are_checked():
    buf = bytes(40)
    small = np.empty(1, np.int64)
    with pytest.raises(ValueError):
        _cwalk.walk(buf, 0, 16, False, 1e6, small, small, small, np.empty(1))
    with pytest.raises(ValueError):
        _cwalk.walk(buf, 0, 8, False, 1e6, *(np.empty(9, np.int64) for _ in range(3)), np.empty(9))
    with pytest.raises(ValueError):
        _cwalk.heads(buf, np.zeros(3, np.int64), 50, np.empty(10, np.uint8))
    room = len(buf) // 32 + 1
    with pytest.raises(ValueError):  # an EPB is at least 32 bytes: room for len // 32 + 1 records
        _cwalk.walk_epb(buf, 0, False, 1, *(np.empty(room - 1, np.int64) for _ in range(5)))
    with pytest.raises(ValueError):
        _cwalk.walk_epb(buf, -1, False, 1, *(np.empty(room, np.int64) for _ in range(5)))
    assert _cwalk.walk_epb(buf, 0, False, 1, *(np.empty(room, np.int64) for _ in range(5))) == (0, 0)


def test_heads_zero_fills_past_the_buffer():
    out = np.empty((3, 4), np.uint8)
    _cwalk.heads(bytes(range(10)), np.array([0, 8, 20], np.int64), 4, out)
    assert out.tolist() == [[0, 1, 2, 3], [8, 9, 0, 0], [0, 0, 0, 0]]


def analysis(path):
    a = Analysis(analyze_capture(path, block_bytes=4096, vector=True))
    return {name: [dataclasses.asdict(r) for r in getattr(a, name)]
            for name in ("exchanges", "ike", "sas", "child_sas", "flows")} | {"acc": a.accounting.to_dict()}


def test_analysis_without_the_c_module_is_the_same(monkeypatch):
    paths = ([p for p in PCAPS if p.stat().st_size > 20000][:12] + [p for p in PCAPNGS if p.stat().st_size > 5000][:8]
             + sorted((ROOT / "fixtures" / "synthetic").glob("*.pcap")))
    with_c = [analysis(p) for p in paths]
    monkeypatch.setenv("IPSECPCAP_PUREWALK", "1")
    monkeypatch.setattr(vector, "_cwalk", None)  # the column-by-column numpy gather
    assert [analysis(p) for p in paths] == with_c


@pytest.mark.parametrize("seed", range(6))
def test_c_walk_equals_python_walk_on_damaged_pcapng(tmp_path, monkeypatch, seed):
    """Bytes flipped, blocks cut short or lengthened at random in pcapng fixtures: the
    C walk reads nothing outside the buffer and agrees with the Python walk on every
    record, bad frame and warning."""
    import random

    rnd = random.Random(seed)
    small = [p for p in PCAPNGS if p.suffix != ".gz" and p.stat().st_size < 200_000]
    for n, path in enumerate(rnd.sample(small, min(4, len(small)))):
        data = bytearray(path.read_bytes())
        for _ in range(rnd.randint(1, 8)):
            at = rnd.randrange(len(data))
            if rnd.random() < 0.3:  # a block length or a field next to it
                data[at:at + 4] = rnd.choice([b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f", b"\x20\x00\x00\x00",
                                              bytes(rnd.randrange(256) for _ in range(4))])
            else:
                data[at] ^= 1 << rnd.randrange(8)
        if rnd.random() < 0.5:
            del data[rnd.randrange(len(data)):]
        damaged = tmp_path / f"d{n}.pcapng"
        damaged.write_bytes(bytes(data))
        for bs in (200, 4 << 20):
            got = []
            for pure in (False, True):
                try:
                    got.append(records(damaged, bs, pure, monkeypatch))
                except Exception as e:  # noqa: BLE001 - a capture no walk can open: both say the same
                    got.append(f"{type(e).__name__}: {e}")
            assert got[0] == got[1], (path.name, seed, bs)
