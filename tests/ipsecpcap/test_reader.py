"""Tests for ipsecpcap.reader: synthetic captures built with struct, and the public fixtures.

Synthetic files are written field by field (comments name the fields) so each
test controls exactly the bytes it needs; the real captures are checked
against the frame counts in fixtures/public/MANIFEST.tsv (tshark 4.0.17) and
against dpkt's readers, never against this reader's own earlier output.
"""
from __future__ import annotations

import csv
import gzip
import io
import random
import json
import os
import struct
import subprocess
import sys
import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import pytest

from ipsecpcap.reader import Block, CaptureError, CaptureReader, _ReadAhead, _cwalk, open_capture

dpkt = pytest.importorskip("dpkt")


@pytest.fixture(autouse=True, params=["c-walk", "python-walk"])
def walk_kind(request, monkeypatch):
    """Every test here runs with the classic-pcap walk in C (ipsecpcap._walk) and in Python."""
    if request.param == "c-walk":
        if _cwalk is None:
            pytest.skip("ipsecpcap._walk is not built here")
        monkeypatch.delenv("IPSECPCAP_PUREWALK", raising=False)
    else:
        monkeypatch.setenv("IPSECPCAP_PUREWALK", "1")
    return request.param

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "public"
MANIFEST = FIXTURES / "MANIFEST.tsv"


# ------------------------------------------------------------------ builders
def pcap(records, *, order="<", nano=False, kuz=False, linktype=1, snaplen=65535):
    """Classic pcap. records: (sec, usec-or-nsec, data[, origlen])."""
    magic = 0xA1B2CD34 if kuz else 0xA1B23C4D if nano else 0xA1B2C3D4
    # magic, version 2.4, thiszone, sigfigs, snaplen, linktype
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        sec, frac, data = rec[:3]
        origlen = rec[3] if len(rec) > 3 else len(data)
        out.append(struct.pack(order + "IIII", sec, frac, len(data), origlen))  # ts_sec, ts_frac, caplen, len
        if kuz:
            out.append(struct.pack(order + "IHBB", 2, 0x0800, 0, 0))  # ifindex, protocol, pkt_type, pad
        out.append(data)
    return b"".join(out)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) & 3)


def block(o, btype, body):
    """pcapng block: type, total length, body padded to 32 bits, total length."""
    body = _pad(body)
    blen = 12 + len(body)
    return struct.pack(o + "II", btype, blen) + body + struct.pack(o + "I", blen)


def opt(o, code, value):
    return struct.pack(o + "HH", code, len(value)) + _pad(value)


def shb(o):
    # byte-order magic, version 1.0, section length -1 (unknown)
    return block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(o, linktype, snaplen=0, tsresol=None, tsoffset=None):
    opts = b""
    if tsresol is not None:
        opts += opt(o, 9, bytes([tsresol]))  # if_tsresol
    if tsoffset is not None:
        opts += opt(o, 14, struct.pack(o + "q", tsoffset))  # if_tsoffset
    if opts:
        opts += opt(o, 0, b"")  # opt_endofopt
    return block(o, 1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts)


def epb(o, ifid, t, data, origlen=None, caplen=None):
    # interface id, timestamp high, timestamp low, captured length, original length, data
    cl = len(data) if caplen is None else caplen
    ol = len(data) if origlen is None else origlen
    return block(o, 6, struct.pack(o + "IIIII", ifid, t >> 32, t & 0xFFFFFFFF, cl, ol) + data)


def pb(o, ifid, t, data):
    # obsolete Packet Block: interface id (16), drops count (16), ts high, ts low, caplen, len, data
    return block(o, 2, struct.pack(o + "HHIIII", ifid, 0, t >> 32, t & 0xFFFFFFFF, len(data), len(data)) + data)


def spb(o, origlen, data):
    return block(o, 3, struct.pack(o + "I", origlen) + data)  # original length, data


def isb(o, ifid, t):
    # Interface Statistics Block: interface id, ts high, ts low, isb_ifrecv option
    return block(o, 5, struct.pack(o + "III", ifid, t >> 32, t & 0xFFFFFFFF)
                 + opt(o, 4, struct.pack(o + "Q", 7)) + opt(o, 0, b""))


def nrb(o):
    # Name Resolution Block: nrb_record_ipv4 (1) 10.0.0.1 "gw", nrb_record_end
    return block(o, 4, struct.pack(o + "HH", 1, 7) + _pad(bytes([10, 0, 0, 1]) + b"gw\0")
                 + struct.pack(o + "HH", 0, 0))


def dsb(o):
    # Decryption Secrets Block: secrets type (TLS key log), length, data
    return block(o, 0x0A, struct.pack(o + "II", 0x544C534B, 4) + b"CLNT")


def write(tmp_path, data: bytes, name="c.pcap") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def records(reader_or_path, **kw):
    """Everything a reader delivers: (frame, ts, linktype, caplen, origlen, bytes), bad, warnings."""
    r = reader_or_path if isinstance(reader_or_path, CaptureReader) else open_capture(reader_or_path, **kw)
    out, bad = [], []
    with r:
        for b in r:
            assert isinstance(b, Block)
            n = len(b.offsets)
            assert len(b.caplens) == len(b.origlens) == len(b.ts) == len(b.frames) == n
            assert isinstance(b.linktypes, int) or len(b.linktypes) == n
            for i in range(n):
                out.append((b.frames[i], b.ts[i], b.linktype(i), b.caplens[i], b.origlens[i], b.packet(i)))
            bad.extend(b.bad)
    return out, bad, r


PKTS = [bytes(range(i % 256)) * (1 + i % 3) for i in range(40, 60)]


# ------------------------------------------------------------ classic pcap
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, order, nano):
    frac = 123456789 if nano else 123456
    recs = [(1700000000 + i, frac, d, len(d) + 10) for i, d in enumerate(PKTS)]
    path = write(tmp_path, pcap(recs, order=order, nano=nano, linktype=1))
    got, bad, r = records(path)
    assert (r.format, r.compressed, bad, r.warnings) == ("pcap", False, [], [])
    assert r.frames == len(PKTS) and r.size == os.path.getsize(path) == r.bytes_read
    div = 1e9 if nano else 1e6
    for i, (frame, ts, lt, cl, ol, data) in enumerate(got):
        assert frame == i + 1 and lt == 1
        assert (cl, ol, data) == (len(PKTS[i]), len(PKTS[i]) + 10, PKTS[i])
        assert ts == 1700000000 + i + frac / div
    assert abs(got[0][1] - Fraction(1700000000) - Fraction(frac, int(div))) < 1e-6


def test_pcap_kuznetzov_24_byte_headers(tmp_path):
    path = write(tmp_path, pcap([(5, 6, d) for d in PKTS], kuz=True))
    got, bad, r = records(path, block_bytes=64)
    assert [g[5] for g in got] == PKTS and not bad and not r.warnings


def test_pcap_linktype_fcs_bits_masked(tmp_path):
    # libpcap LT_FCS_DATALINK_EXT(2): FCS length 2 x 16 bits in the top nibble, "present" bit 26
    field = (2 << 28) | 0x04000000 | 1
    path = write(tmp_path, pcap([(1, 0, PKTS[0] + b"FCS!")], linktype=field))
    got, _, _ = records(path)
    assert got[0][2] == 1 and got[0][5] == PKTS[0] + b"FCS!"  # delivered as recorded, FCS included


def test_pcap_matches_dpkt_writer(tmp_path):
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, linktype=101)
    for i, d in enumerate(PKTS):
        w.writepkt(d, ts=1600000000 + i * 0.25)
    path = write(tmp_path, buf.getvalue())
    got, _, _ = records(path)
    ref = list(dpkt.pcap.Reader(open(path, "rb")))
    assert [(g[1], g[5], g[2]) for g in got] == [(ts, d, 101) for ts, d in ref]


@pytest.mark.parametrize("block_bytes", [64, 100, 1000, 4 << 20])
def test_records_straddle_reads(tmp_path, block_bytes):
    big = bytes(range(256)) * 40  # 10240 bytes: bigger than every small block_bytes
    data = [PKTS[0], big, PKTS[1], b"", PKTS[2], big + b"x"] + PKTS
    path = write(tmp_path, pcap([(1, i, d) for i, d in enumerate(data)]))
    got, bad, r = records(path, block_bytes=block_bytes)
    assert [g[5] for g in got] == data and [g[0] for g in got] == list(range(1, len(data) + 1))
    assert not bad and not r.warnings and r.bytes_read == r.size


def test_pcap_truncated_last_record(tmp_path):
    full = pcap([(1, 0, d) for d in PKTS[:3]])
    path = write(tmp_path, full[:-10])  # cut 10 bytes into the last packet (len 42)
    got, bad, r = records(path, block_bytes=64)
    assert len(got) == 2 and r.frames == 3
    assert bad == [(3, "truncated", f"captured {len(PKTS[2]) - 10} of {len(PKTS[2])} bytes")]
    assert len(r.warnings) == 1 and "frame 3" in r.warnings[0]


def test_pcap_truncated_record_header(tmp_path):
    full = pcap([(1, 0, d) for d in PKTS[:3]])
    path = write(tmp_path, full + struct.pack("<IIII", 1, 0, 5, 5)[:7])
    got, bad, r = records(path)
    assert len(got) == 3 and r.frames == 3 and bad == []
    assert r.warnings == ["file ends inside a record header: 7 bytes"]


@pytest.mark.parametrize("block_bytes", [64, 4 << 20])
def test_pcap_impossible_caplen_stops(tmp_path, block_bytes):
    body = pcap([(1, 0, d) for d in PKTS[:2]])
    body += struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 60) + b"\0" * 200  # impossible caplen
    body += pcap([(1, 0, PKTS[3])])[24:]  # never reached: no resynchronisation
    got, bad, r = records(write(tmp_path, body), block_bytes=block_bytes)
    assert len(got) == 2 and r.frames == 3
    assert bad == [(3, "bad_length", f"caplen {0xFFFFFFF0} > {256 << 20}")]
    assert len(r.warnings) == 1 and "stopped" in r.warnings[0]


@pytest.mark.parametrize("content,why", [
    (b"", "empty"),
    (b"hello, this is not a capture at all\n", "not a pcap or pcapng"),
    (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "pcap file header"),
    (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\xde\xad\xbe\xef" + b"\0" * 16, "byte-order magic"),
    (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a", "section header"),
    (gzip.compress(b"not a capture either"), "gzip content"),
    (gzip.compress(pcap([(1, 0, b"abcd")]))[:12], "gzip"),
])
def test_not_a_capture_raises(tmp_path, content, why):
    path = write(tmp_path, content, "bad.bin")
    with pytest.raises(CaptureError) as e:
        open_capture(path)
    msg = str(e.value)
    assert "\n" not in msg and path in msg and why in msg


def test_missing_file_raises_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot open"):
        open_capture(tmp_path / "nope.pcap")


# ------------------------------------------------------------------ pcapng
def test_pcapng_interfaces_tsresol_tsoffset_and_skipped_blocks(tmp_path):
    o = "<"
    data = b"".join([
        shb(o),
        idb(o, 1, snaplen=65535),                       # if 0: Ethernet, default 10^-6
        idb(o, 101, tsresol=0x80 | 10, tsoffset=1000),  # if 1: raw IP, 2^-10 s, +1000 s
        nrb(o),
        epb(o, 0, 1_700_000_000_123_456, PKTS[0]),
        isb(o, 0, 5),
        epb(o, 1, 1024 * 7 + 512, PKTS[1], origlen=999),
        dsb(o),
        block(o, 0x40000BAD, b"custom block, skipped"),
        idb(o, 0, tsresol=9),                           # if 2: DLT_NULL, nanoseconds
        epb(o, 2, 1_700_000_000_123_456_789, PKTS[2]),
        isb(o, 1, 6),
    ])
    for bs in (64, 4 << 20):
        got, bad, r = records(write(tmp_path, data, "x.pcapng"), block_bytes=bs)
        assert (r.format, bad, r.warnings, r.frames) == ("pcapng", [], [], 3)
        assert [(g[0], g[2], g[3], g[4], g[5]) for g in got] == [
            (1, 1, len(PKTS[0]), len(PKTS[0]), PKTS[0]),
            (2, 101, len(PKTS[1]), 999, PKTS[1]),
            (3, 0, len(PKTS[2]), len(PKTS[2]), PKTS[2]),
        ]
        assert got[0][1] == 1700000000.123456
        assert got[1][1] == 1000 + 7.5
        assert got[2][1] == float(Fraction(1_700_000_000_123_456_789, 10**9))
    with open_capture(write(tmp_path, data, "x.pcapng")) as r:
        blocks = list(r)
    assert len(blocks) == 1 and blocks[0].linktypes == [1, 101, 0]


def test_pcapng_single_linktype_is_an_int(tmp_path):
    data = shb("<") + idb("<", 1) + idb("<", 1) + epb("<", 0, 1, b"a") + epb("<", 1, 2, b"b")
    with open_capture(write(tmp_path, data, "x.pcapng")) as r:
        (b,) = list(r)
    assert b.linktypes == 1


def test_pcapng_spb_and_obsolete_pb(tmp_path):
    o = "<"
    data = b"".join([
        shb(o), idb(o, 1, snaplen=20, tsresol=3),
        spb(o, 100, bytes(range(24))),          # origlen 100, snaplen 20: caplen 20 of 24 in the block
        spb(o, 5, b"hello"),                    # 3 bytes of padding are not packet bytes
        pb(o, 0, 12345, PKTS[0]),               # obsolete Packet Block, ms resolution
        isb(o, 0, 1),
    ])
    got, bad, r = records(write(tmp_path, data, "x.pcapng"), block_bytes=64)
    assert not bad and not r.warnings and r.frames == 3
    assert [(g[0], g[3], g[4], g[5]) for g in got] == [
        (1, 20, 100, bytes(range(20))), (2, 5, 5, b"hello"), (3, len(PKTS[0]), len(PKTS[0]), PKTS[0])]
    assert got[0][1] == 0.0 and got[2][1] == 12.345


def test_pcapng_spb_without_snaplen_uses_block_room(tmp_path):
    data = shb("<") + idb("<", 1, snaplen=0) + spb("<", 1500, b"x" * 64)
    got, bad, _ = records(write(tmp_path, data, "x.pcapng"))
    assert [(g[3], g[4]) for g in got] == [(64, 1500)] and not bad


def test_pcapng_two_sections_with_different_byte_orders(tmp_path):
    data = b"".join([
        shb("<"), idb("<", 1), idb("<", 105), epb("<", 0, 10**6, PKTS[0]), epb("<", 1, 2 * 10**6, PKTS[1]),
        shb(">"), idb(">", 101, tsresol=9), epb(">", 0, 3 * 10**9, PKTS[2]),
        epb(">", 1, 4 * 10**9, PKTS[3]),  # interface 1 belonged to the first section only
        nrb(">"), epb(">", 0, 5 * 10**9, PKTS[4]),
    ])
    for bs in (64, 4 << 20):
        got, bad, r = records(write(tmp_path, data, "x.pcapng"), block_bytes=bs)
        assert [(g[0], g[1], g[2], g[5]) for g in got] == [
            (1, 1.0, 1, PKTS[0]), (2, 2.0, 105, PKTS[1]), (3, 3.0, 101, PKTS[2]), (5, 5.0, 101, PKTS[4])]
        assert bad == [(4, "bad_header", "interface 1 not defined (1 in section)")]
        assert r.frames == 5 and r.warnings == [] and r._fmt.sections == 2


def test_pcapng_big_endian_file(tmp_path):
    data = shb(">") + idb(">", 1) + epb(">", 0, 1_500_000, PKTS[5])
    got, _, r = records(write(tmp_path, data, "x.pcapng"))
    assert [(g[1], g[5]) for g in got] == [(1.5, PKTS[5])] and r.format == "pcapng"


def test_pcapng_bad_packet_blocks_are_counted_and_skipped(tmp_path):
    o = "<"
    data = b"".join([
        shb(o), idb(o, 1),
        epb(o, 0, 1, PKTS[0]),
        epb(o, 3, 2, PKTS[1]),                  # undefined interface
        epb(o, 0, 3, PKTS[2], caplen=5000),     # caplen larger than the block
        block(o, 6, b"\0" * 8),                 # EPB too short for its fixed fields
        epb(o, 0, 4, PKTS[3]),
    ])
    got, bad, r = records(write(tmp_path, data, "x.pcapng"))
    assert [(g[0], g[5]) for g in got] == [(1, PKTS[0]), (5, PKTS[3])]
    assert [(b[0], b[1]) for b in bad] == [(2, "bad_header"), (3, "bad_length"), (4, "bad_length")]
    assert r.frames == 5 and not r.warnings


@pytest.mark.parametrize("blen", [8, 30, 1 << 30])
def test_pcapng_impossible_block_length_stops(tmp_path, blen):
    o = "<"
    broken = struct.pack(o + "II", 6, blen) + b"\0" * 40
    data = shb(o) + idb(o, 1) + epb(o, 0, 1, PKTS[0]) + broken + epb(o, 0, 2, PKTS[1])
    got, bad, r = records(write(tmp_path, data, "x.pcapng"))
    assert len(got) == 1 and not bad and len(r.warnings) == 1 and "stopped" in r.warnings[0]


def test_pcapng_trailing_length_mismatch_stops(tmp_path):
    o = "<"
    bad_blk = bytearray(epb(o, 0, 2, PKTS[1]))
    bad_blk[-4:] = struct.pack(o + "I", 12)
    data = shb(o) + idb(o, 1) + epb(o, 0, 1, PKTS[0]) + bytes(bad_blk) + epb(o, 0, 3, PKTS[2])
    got, bad, r = records(write(tmp_path, data, "x.pcapng"))
    assert len(got) == 1 and len(r.warnings) == 1 and "trailing length" in r.warnings[0]


def test_pcapng_partial_block_at_eof(tmp_path):
    o = "<"
    data = shb(o) + idb(o, 1) + epb(o, 0, 1, PKTS[0]) + epb(o, 0, 2, PKTS[1])[:40]
    got, bad, r = records(write(tmp_path, data, "x.pcapng"), block_bytes=64)
    assert len(got) == 1 and r.frames == 2
    assert bad == [(2, "truncated", f"captured 12 of {len(PKTS[1])} bytes")]
    assert len(r.warnings) == 1 and "file ends inside a block" in r.warnings[0]
    # a partial non-packet block, or a partial block header: a warning only
    got, bad, r = records(write(tmp_path, data[:-40] + idb(o, 1)[:15], "y.pcapng"))
    assert (len(got), bad, len(r.warnings)) == (1, [], 1)
    got, bad, r = records(write(tmp_path, data[:-40] + b"\x06\0\0\0", "z.pcapng"))
    assert (len(got), bad, r.warnings) == (1, [], ["file ends inside a block header: 4 bytes"])


# -------------------------------------------------------------------- gzip
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_both_formats(tmp_path, kind):
    raw = (pcap([(1, 2, d) for d in PKTS]) if kind == "pcap"
           else shb("<") + idb("<", 1) + b"".join(epb("<", 0, i, d) for i, d in enumerate(PKTS)))
    plain, _, _ = records(write(tmp_path, raw, "p"))
    path = write(tmp_path, gzip.compress(raw), "capture.bin")  # detected by content, not by name
    for bs in (64, 4 << 20):
        got, bad, r = records(path, block_bytes=bs)
        assert (r.format, r.compressed) == (kind, True)
        assert got == plain and not bad and not r.warnings
        assert r.bytes_read == r.size == os.path.getsize(path)


def test_gzip_multi_member(tmp_path):
    raw = pcap([(1, 2, d) for d in PKTS])
    cut = [0, 10, 24, 300, 301, len(raw)]
    members = b"".join(gzip.compress(raw[a:b]) for a, b in zip(cut, cut[1:]))
    got, bad, r = records(write(tmp_path, members + b"\0" * 16), block_bytes=64)  # zero padding is fine
    assert [g[5] for g in got] == PKTS and not bad and not r.warnings


def test_gzip_truncated_delivers_what_was_there(tmp_path):
    raw = pcap([(1, 2, os.urandom(300)) for _ in range(50)])
    gz = gzip.compress(raw, compresslevel=1)
    got, bad, r = records(write(tmp_path, gz[: len(gz) * 2 // 3]))
    assert 0 < len(got) < 50
    assert any("gzip stream is truncated" in w for w in r.warnings)
    assert [b[1] for b in bad] in ([], ["truncated"])


def test_gzip_trailing_garbage_warns(tmp_path):
    raw = pcap([(1, 2, d) for d in PKTS])
    got, bad, r = records(write(tmp_path, gzip.compress(raw) + b"GARBAGE!"))
    assert len(got) == len(PKTS) and len(r.warnings) == 1 and "not gzip" in r.warnings[0]


@pytest.mark.parametrize("ahead", [True, False])
def test_gzip_bad_crc_loses_no_packet_before_it(tmp_path, monkeypatch, ahead):
    """zlib gives nothing of a call that fails, and a member's CRC is checked in the call
    that decompresses its last bytes: with 4 MiB reads every packet of a small capture
    was lost (the reader delivered 0 of 100).  Now all but the last byte come out,
    whatever the read size."""
    import ipsecpcap.reader as reader

    monkeypatch.setattr(reader, "INFLATE_AHEAD", ahead)
    raw = pcap([(1, i, os.urandom(300)) for i in range(100)])
    gz = bytearray(gzip.compress(raw))
    gz[-8] ^= 1  # the member's CRC-32 (RFC 1952, section 2.3.1)
    path = write(tmp_path, bytes(gz))
    for bs in (64, 4096, 4 << 20):
        got, bad, r = records(path, block_bytes=bs)
        assert len(got) == 99 and bad == [(100, "truncated", "captured 299 of 300 bytes")]
        assert r.warnings == [f"gzip data is corrupt in member 1 after {len(raw) - 1} decompressed bytes: "
                              "Error -3 while decompressing data: incorrect data check",
                              "file ends inside the data of frame 100: captured 299 of 300 bytes"]


def _gzip_damage(tmp_path):
    """Compressed captures cut or damaged in every way the gzip source warns of, and one
    whose records break before its gzip stream does (the reader stops there)."""
    raw = pcap([(1, i, os.urandom(200 + i)) for i in range(300)])
    gz = gzip.compress(raw, compresslevel=1)
    cases = {f"cut-{n}": gz[:n] for n in (11, 30, 5000, len(gz) // 2, len(gz) - 9, len(gz) - 1)}
    bad = bytearray(gz)
    bad[len(gz) // 3] ^= 0xFF
    cases["corrupt"] = bytes(bad)
    cases["trailing"] = gz + b"GARBAGE!"
    cases["members"] = gzip.compress(raw[:5000]) + gzip.compress(raw[5000:])[:-20]
    broken = bytearray(raw)
    broken[24 + 8:24 + 12] = struct.pack("<I", 1 << 30)  # the first record's captured length
    cases["broken-record"] = gzip.compress(bytes(broken))[:-100]
    return {name: write(tmp_path, data, f"{name}.gz") for name, data in cases.items()}


@pytest.mark.parametrize("block_bytes", [64, 4096, 4 << 20])
def test_gzip_inflated_ahead_as_in_line(tmp_path, monkeypatch, block_bytes):
    """Decompressed by a thread ahead of the walk, a damaged capture gives the same
    records, bad frames and warnings, in the same order, as decompressed in line."""
    import ipsecpcap.reader as reader

    for name, path in _gzip_damage(tmp_path).items():
        got = []
        for ahead in (True, False):
            monkeypatch.setattr(reader, "INFLATE_AHEAD", ahead)
            try:
                out, bad, r = records(path, block_bytes=block_bytes)
                got.append((out, bad, r.warnings, r.frames))
            except CaptureError as e:
                got.append(str(e))
        assert got[0] == got[1], name
        assert got[0] and (isinstance(got[0], str) or got[0][2]), name  # every case says what is wrong


def test_gzip_reader_closed_early_stops_inflating(tmp_path):
    raw = pcap([(1, 2, os.urandom(1400)) for _ in range(3000)])
    r = open_capture(write(tmp_path, gzip.compress(raw, compresslevel=1)), block_bytes=4096)
    next(iter(r))
    thread = r._src._thread
    r.close()
    thread.join(timeout=10)
    assert not thread.is_alive()


# ----------------------------------------------------------- pipes, streams
def _summary_code(src: str) -> str:
    return ("import json,sys; from ipsecpcap.reader import open_capture\n"
            f"r = open_capture({src}, block_bytes=512)\n"
            "rows = [[f, len(b.packet(i))] for b in r for i, f in enumerate(b.frames)]\n"
            "print(json.dumps([r.name, r.format, r.compressed, r.size, r.bytes_read, rows]))")


@pytest.mark.parametrize("compress", [False, True])
def test_stdin_from_cat_pipe(tmp_path, compress):
    raw = pcap([(1, 2, d) for d in PKTS])
    path = write(tmp_path, gzip.compress(raw) if compress else raw)
    cat = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)  # `cat file | python -c ...`
    out = subprocess.run([sys.executable, "-c", _summary_code('"-"')], stdin=cat.stdout,
                         check=True, capture_output=True, text=True).stdout
    cat.stdout.close()
    assert cat.wait() == 0
    name, fmt, comp, size, nread, rows = json.loads(out)
    assert (name, fmt, comp, size) == ("-", "pcap", compress, None)
    assert nread == os.path.getsize(path)
    assert rows == [[i + 1, len(d)] for i, d in enumerate(PKTS)]


@pytest.mark.parametrize("buffering", [0, -1])
def test_os_pipe_with_slow_writer(buffering):
    o = ">"
    raw = shb(o) + idb(o, 1) + b"".join(epb(o, 0, i, d) for i, d in enumerate(PKTS * 5))
    rfd, wfd = os.pipe()

    def writer():
        with os.fdopen(wfd, "wb", buffering=0) as w:
            for i in range(0, len(raw), 7):  # dribble: reads come back short
                w.write(raw[i:i + 7])

    t = threading.Thread(target=writer)
    t.start()
    with os.fdopen(rfd, "rb", buffering=buffering) as stream:
        got, bad, r = records(open_capture(stream, block_bytes=256))
        assert r.size is None and not stream.closed  # a caller's stream is not ours to close
    t.join()
    assert [g[5] for g in got] == PKTS * 5 and not bad and not r.warnings


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="Linux pipes only")
def test_pipe_buffer_is_widened():
    import fcntl

    rfd, wfd = os.pipe()
    raw = pcap([(1, 2, d) for d in PKTS])
    os.write(wfd, raw)
    os.close(wfd)
    with open("/proc/sys/fs/pipe-max-size") as f:
        want = min(int(f.read()), 1 << 20)
    with os.fdopen(rfd, "rb") as stream:
        got, bad, r = records(open_capture(stream))
        assert fcntl.fcntl(rfd, fcntl.F_GETPIPE_SZ) == want  # the writer is not held up every 64 KiB
    assert [g[5] for g in got] == PKTS and not bad


def test_non_seekable_stream_is_never_seeked():
    raw = pcap([(1, 2, d) for d in PKTS])

    class NoSeek(io.RawIOBase):
        def __init__(self):
            self._b = io.BytesIO(raw)

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), 5)
            data = self._b.read(n)
            b[:len(data)] = data
            return len(data)

        def seek(self, *a):
            raise AssertionError("seek called")

        def tell(self):
            raise AssertionError("tell called")

    got, _, r = records(open_capture(NoSeek(), block_bytes=64))
    assert [g[5] for g in got] == PKTS and r.name == "<stream>"


def test_memory_stays_flat(tmp_path):
    pkt = os.urandom(1400)
    n = 24000  # ~34 MB
    path = tmp_path / "big.pcap"
    with open(path, "wb") as f:
        f.write(pcap([]))
        rec = struct.pack("<IIII", 1, 2, len(pkt), len(pkt)) + pkt
        for _ in range(n // 1000):
            f.write(rec * 1000)
    tracemalloc.start()
    try:
        count = 0
        with open_capture(path, block_bytes=1 << 20) as r:
            for b in r:
                count += len(b.offsets)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n and r.bytes_read == os.path.getsize(path)
    assert peak < 4 << 20, peak  # two 1 MiB reads and their columns, not the 34 MB file (not read ahead)


# ------------------------------------------------------------ real captures
def _manifest_rows():
    if not MANIFEST.exists():
        return []
    with open(MANIFEST, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


needs_fixtures = pytest.mark.skipif(not MANIFEST.exists(), reason="fixtures/public not present")


@needs_fixtures
@pytest.mark.parametrize("row", _manifest_rows(), ids=lambda r: r["path"])
def test_fixture_frame_count_matches_manifest(row):
    path = FIXTURES / row["path"]
    got, bad, r = records(path)
    assert r.frames == len(got) == int(row["frames"])
    assert not bad and not r.warnings
    small, _, _ = records(path, block_bytes=64)
    assert small == got


def _dpkt_records(path: Path):
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rd = (dpkt.pcapng.Reader if raw[:4] == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader)(io.BytesIO(raw))
    return rd.datalink(), [(float(ts), pkt) for ts, pkt in rd]


@needs_fixtures
@pytest.mark.parametrize("rel,linktype", [
    ("arkime/IKEv1.pcap", 1),                                        # pcap, Ethernet
    ("nDPI/ipsec_isakmp_esp.pcap", 1),
    ("suricata-verify/ipv6-dos-with-ext-headers-5/denial6-5.pcap", 1),
    ("scapy/ikev2_nat_t.pcapng", 1),                                 # pcapng, nanoseconds
    ("nDPI/esp.pcapng", 1),
    ("wireshark/ikev1-bug-12610.pcapng.gz", 1),                      # gzip-compressed pcapng
    ("tcpdump/ikev2pI2-segfault.pcapng", 0),                         # pcapng, DLT_NULL
    ("openswan/ikev2crypto/ct10-parentI2/parentR1.pcap", 0),         # pcap, DLT_NULL
    ("suricata-verify/ikev2-weak-dh/IKEv2_SA_INIT_2-8-weak.pcap", 101),  # raw IP
])
def test_fixture_agrees_with_dpkt(rel, linktype):
    path = FIXTURES / rel
    if not path.exists():
        pytest.skip(f"{rel} not present")
    ref_lt, ref = _dpkt_records(path)
    got, _, _ = records(path, block_bytes=4096)
    assert ref_lt == linktype and len(got) == len(ref)
    for g, (ts, pkt) in zip(got, ref):
        assert g[2] == linktype and g[5] == pkt and g[3] == len(pkt)
        # dpkt divides a float for ns pcapng (off by an ulp); ours is the int quotient rounded once
        assert g[1] == ts if rel.endswith(".pcap") else abs(g[1] - ts) < 1e-6


def test_damaged_input_never_raises():
    """Random byte changes and cuts: only CaptureError at open, and every frame accounted for."""
    import random

    rng = random.Random(20240601)
    o = "<"
    ng = b"".join([shb(o), idb(o, 1, snaplen=64), idb(o, 101, tsresol=0x86), nrb(o)]
                  + [epb(o, i % 2, i * 999, d) for i, d in enumerate(PKTS)]
                  + [spb(o, 70, PKTS[1]), pb(o, 1, 5, PKTS[2]), isb(o, 0, 9), shb(">"), idb(">", 0),
                     epb(">", 0, 7, PKTS[3])])
    classic = pcap([(i, i, d) for i, d in enumerate(PKTS)])
    for base in (ng, classic, gzip.compress(ng)):
        for _ in range(300):
            b = bytearray(base)
            for _ in range(rng.randrange(0, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            if rng.random() < 0.5:
                b = b[:rng.randrange(len(b))]
            try:
                r = open_capture(io.BytesIO(bytes(b)), block_bytes=rng.choice([64, 300, 1 << 20]))
            except CaptureError:
                continue
            seen = []
            for blk in r:
                assert all(off + cl <= len(blk.data) for off, cl in zip(blk.offsets, blk.caplens))
                seen += blk.frames + [x[0] for x in blk.bad]
            assert sorted(seen) == list(range(1, r.frames + 1))


# ------------------------------------------------------------ read-ahead
class _SmallReadAhead(_ReadAhead):
    CHUNK = 7  # many chunks for a short stream: reads cross their boundaries
    DEPTH = 2


class _Failing:
    """A stream that gives ``data`` in reads of at most 5 bytes, then raises an OSError."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n):
        if self.pos >= len(self.data):
            raise OSError(5, "Input/output error")
        got = self.data[self.pos:self.pos + min(n, 5)]
        self.pos += len(got)
        return got

    def close(self):
        pass


def test_read_ahead_reads_what_the_stream_holds():
    """Reads of every size, across the chunks read ahead, give the stream's bytes in order;
    the end gives short reads and then b""."""
    data = os.urandom(1000)
    rng = random.Random(3)
    r = _SmallReadAhead(io.BytesIO(data))
    got = []
    while True:
        part = r.read(rng.choice((1, 2, 7, 8, 13, 50)))
        if not part:
            break
        got.append(part)
    assert b"".join(got) == data
    assert r.read(10) == b""
    r.close()


def test_read_ahead_hands_on_a_read_error_after_the_data_before_it():
    """What came before the error is read first; then the error is raised in the reading thread."""
    data = bytes(range(40))
    r = _SmallReadAhead(_Failing(data))
    assert r.read(40) == data
    with pytest.raises(OSError, match="Input/output error"):
        r.read(1)
    r.close()


def test_read_ahead_stops_when_the_reader_is_closed_early():
    """Closed after one read of a long stream, the thread waiting for room in the queue ends."""
    r = _SmallReadAhead(io.BytesIO(bytes(10_000)))
    assert r.read(3) == bytes(3)
    r.close()
    r._thread.join(timeout=5)
    assert not r._thread.is_alive()
