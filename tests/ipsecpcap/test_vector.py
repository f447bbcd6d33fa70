"""The vectorised fast path (ipsecpcap.vector) against the frame-by-frame decoder.

The frame-by-frame decoder is itself checked against tshark frame by frame
(tests/test_against_tshark.py) and against the manifest; here every table the
analysis builds -- exchanges, ike, sas (with the sequence columns and events),
child_sas, flows, timeline, accounting -- must come out identical from both
paths, and so must the tracker's own state (the ESP samples of the
NULL-encryption rule, the order of its SAs and flows).  Captures: every
fixture, the benchmark capture scaled down, and a synthetic capture made to
hit every way out of the bulk path (sequence anomalies, TCP handshakes from
both ends, keys that a slow frame shares with bulk frames, ICMP errors,
fragments, VLAN tags, timestamps going backwards).  Each is run with the
default batch and with tiny blocks and batches, so that groups straddle
batches.
"""
from __future__ import annotations

import dataclasses
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ipsecpcap.vector as vector
from ipsecpcap.keytable import KeyTable
from ipsecpcap.analysis import Analysis, analyze_capture
from ipsecpcap.tracker import SA_SEQ_RING, SA_SEQ_TOP

try:
    from reference import ROOT, all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import ROOT, all_captures

SYNTHETIC = sorted((ROOT / "fixtures" / "synthetic").glob("*.pcap*"))
CAPTURES = [c.path for c in all_captures()] + SYNTHETIC
GENERATOR = ROOT / "bench" / "make_bench_pcap.py"


def tables(tracker) -> dict:
    """Everything the analysis shows, plus the tracker state the tables do not show."""
    a = Analysis(tracker)
    out = {name: [dataclasses.asdict(r) for r in getattr(a, name)]
           for name in ("exchanges", "ike", "sas", "child_sas", "flows")}
    out["accounting"] = a.accounting.to_dict()
    out["timeline"] = a.timeline().to_dict()
    out["summary"] = a.summary()
    out["esp_samples"] = list(tracker.esp_samples.items())
    out["sa_order"] = list(tracker.sas)
    # each SA's anti-replay ring (the frames of its last 64 numbers, which a later duplicate
    # or late packet is told against) and the in-order top it hands the hot path
    out["sa_rings"] = [(list(e[SA_SEQ_RING]), e[SA_SEQ_TOP]) for e in tracker.sas.values()]
    # every flow with its raw TCP bits (the order of the rows is the tracker's own business:
    # the bulk path makes a batch's new flows before the flows of the decoder's calls)
    flows = tracker.flows
    out["flow_rows"] = sorted((k, sorted(flows.row(i).items())) for i, k in enumerate(flows.keys()))
    out["keepalives"] = tracker.keepalives
    return out


def both(path, block_bytes=4 << 20, batch=None, monkeypatch=None):
    if batch is not None:
        monkeypatch.setattr(vector, "BATCH", batch)
    vec = analyze_capture(path, block_bytes=block_bytes, vector=True)
    pkt = analyze_capture(path, block_bytes=block_bytes, vector=False)
    return tables(vec), tables(pkt)


def assert_same(vec: dict, pkt: dict) -> None:
    for name in pkt:
        assert vec[name] == pkt[name], f"{name} differs between the vectorised and the frame-by-frame path"
    # equal is not enough for the counts: a numpy integer would not go into JSON
    assert all(type(n) is int for n in vec["accounting"]["by_category"].values())


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: Path(p).relative_to(ROOT / "fixtures").as_posix())
def test_every_fixture_same_tables(path, monkeypatch):
    pkt = tables(analyze_capture(path, vector=False))
    assert_same(tables(analyze_capture(path, vector=True)), pkt)
    monkeypatch.setattr(vector, "BATCH", 5)  # tiny blocks and batches: groups straddle batches
    assert_same(tables(analyze_capture(path, block_bytes=512, vector=True)), pkt)


@pytest.fixture(scope="module")
def bench_capture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "bench_30k.pcap"
    subprocess.run([sys.executable, str(GENERATOR), "--count", "30000", "--out", str(out), "--seed", "5"],
                   check=True, capture_output=True)
    return out


@pytest.mark.parametrize("block_bytes,batch", [(4 << 20, None), (4096, 50)])
def test_benchmark_capture_same_tables(bench_capture, block_bytes, batch, monkeypatch):
    vec, pkt = both(bench_capture, block_bytes, batch, monkeypatch)
    assert_same(vec, pkt)
    # the comparison means something: the capture has what the issue describes
    cats = pkt["accounting"]["by_category"]
    assert cats["analysed:esp"] > 15000 and cats["analysed:ip"] > 5000 and cats["analysed:ike"] > 200
    assert cats["analysed:ah"] > 100 and cats["analysed:ah+esp"] > 50 and cats["analysed:natt-keepalive"] > 10


def run_vector(path, block_bytes=4 << 20):
    from ipsecpcap.reader import open_capture
    from ipsecpcap.tracker import Tracker

    vd = vector.VectorDecoder(Tracker("x"))
    with open_capture(path, block_bytes=block_bytes) as r:
        for b in r:
            vd.run_block(b)
    vd.finish()
    return vd


def test_bulk_path_is_taken(bench_capture):
    """Most frames of the benchmark capture go the bulk way (else the test above proves little)."""
    vd = run_vector(bench_capture)
    assert vd.stats["frame_frames"] == 0
    bulk = vd.counts["analysed:esp"] + vd.counts["analysed:ip"]
    assert bulk > 0.9 * vd.stats["bulk_frames"]
    # AH, IKE and NAT-T keep-alives are taken in bulk too: no frame goes through the decoder
    assert vd.counts["analysed:ike"] and vd.counts["analysed:natt-keepalive"] and vd.counts["analysed:ah"]
    assert vd.stats["decoded"] == 0


def test_seen_sas_is_a_set():
    """The classifier's set of seen SAs (a hash table in numpy arrays) answers as a Python
    set does: empty, as it grows, for keys whose hashes collide (long probe runs, wrapping
    around the end of the table) and at the ends of the key space."""
    rng = np.random.default_rng(7)
    seen, ref = vector._SeenSAs(), set()

    def check(spi, addr):
        got = seen.contains(np.array(spi, dtype=np.int64), np.array(addr, dtype=">u8"))  # as the classifier asks
        assert got.tolist() == [(s, a) in ref for s, a in zip(spi, addr)]

    def add(keys):
        for k in keys:
            seen.add(*k)
            ref.add(k)

    edges = [(0, 0), (0xFFFFFFFF, 2 ** 64 - 1), (1, 2 ** 64 - 1), (0xFFFFFFFF, 0)]
    check([s for s, a in edges], [a for s, a in edges])  # the empty table
    # keys whose first slot is the last one of the table they will be in (256 slots for 20 keys),
    # half of them with one SPI, half with one address pair
    probe = vector._SeenSAs()
    probe._alloc(256)
    n = 100_000
    spi = np.concatenate((np.full(n, 77), rng.integers(0, 2 ** 32, n)))
    addr = np.concatenate((rng.integers(0, 2 ** 64, n, dtype=np.uint64), np.full(n, 0xC0A80001C0A80002, np.uint64)))
    last = np.flatnonzero(probe._slot(spi, addr) == 255)
    first, second = last[last < n], last[last >= n]
    assert len(first) > 20 and len(second) > 20
    keys = list(zip(spi[last].tolist(), addr[last].tolist()))
    add(keys[:10] + keys[-10:])
    assert len(seen._k1) < 256
    check([s for s, a in keys], [a for s, a in keys])  # 20 in a run from the last slot on, the others not
    assert len(seen._k1) == 256
    add(edges[:2])
    check([s for s, a in edges + keys], [a for s, a in edges + keys])
    # growing, a few keys or many at a time; the same SPI or address pair in several keys
    for n in (1, 3, 50, 1000, 5000, 0, 7):
        spi = rng.integers(0, 2 ** 32, n).tolist()
        addr = rng.integers(0, 2 ** 64, n, dtype=np.uint64).tolist()
        new = list(zip(spi, addr)) + [(spi[0], addr[-1] ^ 1), (spi[-1] ^ 1, addr[0])] if n else []
        add(new)
        old = list(ref)
        old = [old[j] for j in rng.integers(0, len(old), 300)]
        other = [(s ^ 4, a) for s, a in old] + [(s, a ^ (1 << 40)) for s, a in old]
        q = new + old + other + edges
        check([s for s, a in q], [a for s, a in q])
        assert len(seen._k1) >= 8 * len(ref)


@pytest.mark.parametrize("shared", [False, True])
def test_by_sa_is_the_lexsort(shared):
    """The radix order of ESP frames by SPI is the lexsort by (SPI, address pair), frame
    order kept; with an SPI that two address pairs use, the lexsort itself."""
    rng = np.random.default_rng(3)
    spi = rng.choice(np.array([0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x12345678] + list(range(300, 400))), 50_000)
    addr = (spi.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(5)  # one pair per SPI
    if shared:
        addr[rng.integers(0, len(addr), 20)] ^= np.uint64(1 << 63)
    got = vector._by_sa(spi.astype(np.int64), addr)
    assert got.tolist() == np.lexsort((addr, spi)).tolist()


def test_key_table_is_a_dict():
    """The table of flows (a hash table in numpy arrays at most half full, keys of two
    words as _FlowGroups makes them) answers as a dict does: values of the keys put, -1
    for the others, with keys that share either word, long probe runs and growth; asked
    one key at a time (keys waiting to be inserted, or inserted) as an array at once."""
    rng = np.random.default_rng(11)
    table, ref = KeyTable(sparse=2), {}

    def check(keys):
        assert [table.get_one(*k) for k in keys] == [ref.get(k, -1) for k in keys]
        got = table.get(np.array([k1 for k1, k2 in keys], dtype=np.int64),
                        np.array([k2 for k1, k2 in keys], dtype=np.uint64))
        assert got.tolist() == [ref.get(k, -1) for k in keys]

    check([(0, 0), (2 ** 56 - 1, 2 ** 48 - 1)])
    row = 0
    for n in (1, 2, 7, 100, 3000, 20000, 5):
        k1 = ((rng.integers(0, 256, n) << 48) | rng.integers(0, 2 ** 48, n)).tolist()
        k2 = rng.integers(0, 2 ** 48, n).tolist()
        # the same first word with another second, and the reverse: near misses
        keys = list(dict.fromkeys(list(zip(k1, k2)) + [(k1[0], k2[-1] ^ 1), (k1[-1] ^ 1, k2[0])]))
        keys = [k for k in keys if k not in ref]
        for k in keys:
            table.put(*k, row << 1 | (row & 1))
            ref[k] = row << 1 | (row & 1)
            row += 1
        old = list(ref)
        old = [old[j] for j in rng.integers(0, len(old), 500)]
        check(keys + old + [(a ^ 4, b) for a, b in old] + [(a, b ^ (1 << 40)) for a, b in old])
        assert 2 * len(ref) <= len(table._k1) <= 4 * max(len(ref), 16)


# ---------------------------------------------------------------------- a capture with every way out
def _ip4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1, frag: int = 0x4000, opts=b"") -> bytes:
    ihl = 5 + len(opts) // 4
    tot = 4 * ihl + len(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, ident, frag, 64, proto, 0, src, dst) + opts + payload


def _eth(ip: bytes, vlan: int | None = None) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    if vlan is not None:
        return head + struct.pack("!HHH", 0x8100, vlan, 0x0800) + ip
    return head + b"\x08\x00" + ip


def _tcp(sport, dport, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 0x50, flags, 1000, 0, 0) + payload


def _udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _esp(spi, seq, n=40):
    return struct.pack("!II", spi, seq & 0xFFFFFFFF) + bytes(range(n))


def _ah(nh, spi, seq, inner):
    return struct.pack("!BBHII", nh, 4, 0, spi, seq) + b"\xaa" * 12 + inner


def _udp_len(sport, dport, payload, ulen):
    """UDP whose length field says ``ulen`` whatever the payload."""
    return struct.pack("!HHHH", sport, dport, ulen, 0) + payload


def _ike(spi: int, body: bytes = b"", length: int | None = None, mid: int = 0) -> bytes:
    """An IKEv2 IKE_SA_INIT request (RFC 7296 3.1): SPIs, next payload, version 2.0,
    exchange 34, flags (initiator), message ID, length (header and ``body`` unless given)."""
    return (struct.pack("!QQBBBBII", spi, 0, 33, 0x20, 34, 0x08, mid, 28 + len(body) if length is None else length)
            + body)


def ike_frames(rng, a: bytes, b: bytes) -> list[bytes]:
    """Ethernet frames of IKE and NAT-T keep-alives: the shapes the bulk path takes and
    those it leaves to the decoder (malformed, fragmented, tagged, cut short)."""
    msg = _ike(rng.randrange(1, 1 << 64), bytes(rng.choice([0, 4, 60])))
    q = rng.randrange(17)
    if q == 0:  # IKE on 500, and from 500 to another port
        return [_eth(_ip4(a, b, 17, _udp(500, rng.choice([500, 1500]), msg)))]
    if q == 1:  # IKE after the non-ESP marker on 4500, from or to a NAT's port
        return [_eth(_ip4(a, b, 17, _udp(4500, rng.choice([4500, 61000]), bytes(4) + msg)))]
    if q == 2:  # NAT-T keep-alives, one with Ethernet padding after it
        return [_eth(_ip4(a, b, 17, _udp(rng.choice([4500, 61000]), 4500, b"\xff"))) + bytes(rng.choice([0, 17]))]
    if q == 3:  # fewer bytes than an IKE header: malformed:truncated:isakmp
        return [_eth(_ip4(a, b, 17, _udp(500, 500, msg[:rng.choice([0, 20, 27])])))]
    if q == 4:  # the marker and fewer bytes than an IKE header
        return [_eth(_ip4(a, b, 17, _udp(4500, 4500, bytes(4) + msg[:rng.choice([0, 10, 27])])))]
    if q == 5:  # a length field smaller than the header: malformed:bad_length:isakmp
        bad = _ike(rng.randrange(1 << 64), bytes(8), rng.choice([0, 12, 27]), rng.choice([0, 1000]))
        return [_eth(_ip4(a, b, 17, _udp(500, 500, bad) if rng.random() < 0.5 else _udp(4500, 4500, bytes(4) + bad)))]
    if q == 6:  # IKE in two IP fragments
        body = _udp(500, 500, msg + bytes(64))
        ident = rng.randrange(65536)
        return [_eth(_ip4(a, b, 17, body[:48], ident, 0x2000)), _eth(_ip4(a, b, 17, body[48:], ident, 6))]
    if q == 7:  # IKE and a keep-alive under a VLAN tag
        return [_eth(_ip4(a, b, 17, _udp(500, 500, msg)), vlan=5),
                _eth(_ip4(a, b, 17, _udp(4500, 4500, b"\xff")), vlan=5)]
    if q == 8:  # a UDP length beyond the frame (the rest not captured): the message as far as captured
        return [_eth(_ip4(a, b, 17, _udp_len(500, 500, msg, len(msg) + 108)))]
    if q == 9:  # the header itself cut short, though the UDP length says more was sent
        return [_eth(_ip4(a, b, 17, _udp_len(4500, 4500, bytes(4) + msg[:20], 8 + 4 + len(msg))))]
    if q == 10:  # a UDP length shorter than the datagram: the message ends there
        return [_eth(_ip4(a, b, 17, _udp_len(500, 500, msg + bytes(12), 8 + len(msg))))]
    if q == 11:  # a UDP length below its own header: the whole datagram
        return [_eth(_ip4(a, b, 17, _udp_len(rng.choice([500, 4500]), 500, bytes(4) + msg, rng.choice([0, 7]))))]
    if q == 12:  # a keep-alive's byte in a longer datagram (not a keep-alive), and a marker alone
        return [_eth(_ip4(a, b, 17, _udp(4500, 4500, b"\xff\x00"))), _eth(_ip4(a, b, 17, _udp(4500, 4500, bytes(4))))]
    if q == 13:  # IKE over IPv4 with options
        return [_eth(_ip4(a, b, 17, _udp(500, 500, msg), opts=b"\x01\x01\x01\x00"))]
    if q == 14:  # a length field beyond the datagram (a message cut short)
        return [_eth(_ip4(a, b, 17, _udp(500, 500, _ike(7, bytes(8), 4000))))]
    if q == 15:  # from 4500 to 500 after the marker (NAT-T), and from 500 to 4500 without it (ESP)
        return [_eth(_ip4(a, b, 17, _udp(4500, 500, bytes(4) + msg))), _eth(_ip4(a, b, 17, _udp(500, 4500, msg)))]
    return [_eth(_ip4(a, b, 50, b"\x00\x00\x10\x01"))]  # an ESP header cut short


def synthetic_frames(seed: int) -> list[tuple[float, bytes]]:
    rng = random.Random(seed)
    hosts = [bytes((10, 0, i // 256, i % 256)) for i in range(1, 40)]
    sas = []
    for i in range(30):
        a, b = rng.sample(hosts, 2)
        sas.append([a, b, 0x1000 + i, rng.choice([1, 1, 5000, 0xFFFFFFF0]), rng.random() < 0.3])
    flows = []
    for i in range(60):
        a, b = rng.sample(hosts, 2)
        flows.append((a, b, rng.choice([6, 6, 17]), rng.randrange(1024, 65535), rng.choice([80, 443, 53, 9999])))
    out = []
    t = 1000.0
    for n in range(6000):
        r = rng.random()
        if r < 0.45:  # ESP, raw or in UDP 4500, with every kind of sequence anomaly
            sa = rng.choice(sas)
            a, b, spi, seq, udp = sa
            q = rng.random()
            if q < 0.80:
                s = seq
                sa[3] = (seq + 1) & 0xFFFFFFFF
            elif q < 0.86:
                s = max(1, seq - rng.randrange(1, 100))  # replay or late
            elif q < 0.92:
                s = seq + rng.randrange(2, 50)  # a gap
                sa[3] = (s + 1) & 0xFFFFFFFF
            elif q < 0.94:
                s = rng.randrange(1, 4)  # a counter reset
                sa[3] = s + 1
            else:
                s = seq
            pkt = _esp(spi, s, rng.choice([0, 20, 200]))
            ip = _ip4(a, b, 17, _udp(4500, 4500, pkt)) if udp else _ip4(a, b, 50, pkt)
        elif r < 0.75:  # TCP and UDP flows, from both ends, every TCP flag combination
            a, b, proto, sp, dp = rng.choice(flows)
            if rng.random() < 0.4:
                a, b, sp, dp = b, a, dp, sp
            if proto == 6:
                flags = rng.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x00])
                ip = _ip4(a, b, 6, _tcp(sp, dp, flags, b"x" * rng.choice([0, 10])))
            else:
                ip = _ip4(a, b, 17, _udp(sp, dp, b"y" * rng.choice([0, 5, 100])))
        elif r < 0.80:  # AH+ESP and AH over a flow: keys shared with bulk frames
            sa = rng.choice(sas)
            a, b, spi, seq, udp = sa
            if rng.random() < 0.5:
                ip = _ip4(a, b, 51, _ah(50, 0x9000 + spi, seq, _esp(spi, seq)))
                sa[3] = (seq + 1) & 0xFFFFFFFF
            else:
                fa, fb, proto, sp, dp = rng.choice(flows)
                inner = _tcp(sp, dp, 0x10) if proto == 6 else _udp(sp, dp, b"z")
                ip = _ip4(fa, fb, 51, _ah(proto, 0x7000, n, inner))
        elif r < 0.83:  # ICMP port unreachable quoting a flow's packet
            a, b, proto, sp, dp = rng.choice(flows)
            quoted = _ip4(a, b, proto, _tcp(sp, dp, 0x02) if proto == 6 else _udp(sp, dp, b"q"))[:28]
            ip = _ip4(b, a, 1, struct.pack("!BBHI", 3, 3, 0, 0) + quoted)
        elif r < 0.86:  # VLAN-tagged and IP-options copies of flow and ESP frames (the frame-by-frame way)
            a, b, proto, sp, dp = rng.choice(flows)
            payload = _tcp(sp, dp, 0x10) if proto == 6 else _udp(sp, dp, b"v")
            if rng.random() < 0.5:
                out.append((t, _eth(_ip4(a, b, proto, payload), vlan=7)))
            else:
                sa = rng.choice(sas)
                out.append((t, _eth(_ip4(sa[0], sa[1], 50, _esp(sa[2], sa[3]), opts=b"\x01\x01\x01\x00"))))
                sa[3] = (sa[3] + 1) & 0xFFFFFFFF
            t += 0.001
            continue
        elif r < 0.8655:  # AH the bulk path must leave to the decoder, or take with care
            a, b = rng.sample(hosts, 2)
            fa, fb, proto, sp, dp = rng.choice(flows)
            q = rng.random()
            if q < 0.15:  # the capture ends inside AH's ICV: AH alone
                ip = _ip4(a, b, 51, _ah(6, 0x7000, n, b"")[:16])
            elif q < 0.3:  # a payload length that makes AH shorter than its fixed part
                ip = _ip4(a, b, 51, struct.pack("!BBHII", 6, 0, 0, 0x7000, n) + _tcp(1, 2, 0x10))
            elif q < 0.45:  # IKE under AH
                ip = _ip4(a, b, 51, _ah(17, 0x7000, n, _udp(500, 500, bytes(28))))
            elif q < 0.6:  # ESP under AH, cut short
                ip = _ip4(a, b, 51, _ah(50, 0x7000, n, b"\x00\x00\x10"))
            elif q < 0.75:  # AH of the shared SA in a VLAN tag (the decoder touches its key)
                out.append((t, _eth(_ip4(fa, fb, 51, _ah(6, 0x7000, n, _tcp(sp, dp, 0x10))), vlan=9)))
                t += 0.001
                continue
            elif q < 0.9:  # a new flow whose first frame AH protects, then plain
                sp2 = rng.randrange(1024, 65535)
                out.append((t, _eth(_ip4(fa, fb, 51, _ah(6, 0x7100 + n, 1, _tcp(sp2, 22, 0x02))))))
                ip = _ip4(fb, fa, 6, _tcp(22, sp2, 0x12))
            else:  # IP in IP under AH (tunnel mode)
                ip = _ip4(a, b, 51, _ah(4, 0x7000, n, _ip4(fa, fb, 17, _udp(sp, dp, b"i"))))
        elif r < 0.8705:  # a UDP datagram in two IP fragments (rare: its batch goes frame by frame)
            a, b, proto, sp, dp = rng.choice(flows)
            body = _udp(sp, dp, bytes(64))
            ident = rng.randrange(65536)
            out.append((t, _eth(_ip4(a, b, 17, body[:32], ident, 0x2000))))
            ip = _ip4(a, b, 17, body[32:], ident, 4)
        elif r < 0.90:  # IKE, NAT-T keep-alives, odd ones, an ESP header cut short
            for frame in ike_frames(rng, *rng.sample(hosts, 2)):
                out.append((t, frame))
                t += 0.001
            continue
        elif r < 0.901:  # a timestamp that goes backwards (rare: its block goes frame by frame)
            a, b, proto, sp, dp = rng.choice(flows)
            ip = _ip4(a, b, 17, _udp(sp, dp, b"t")) if proto == 17 else _ip4(a, b, 6, _tcp(sp, dp, 0x10))
            out.append((t - rng.choice([0.5, 5.0]), _eth(ip)))
            t += 0.001
            continue
        else:  # an ICMP echo, IPv4 with an unknown protocol
            a, b = rng.sample(hosts, 2)
            ip = _ip4(a, b, 1, struct.pack("!BBHI", 8, 0, 0, n)) if rng.random() < 0.5 else _ip4(a, b, 132, b"s" * 12)
        out.append((t, _eth(ip)))
        t += rng.choice([0.0, 0.001, 0.002])
    return out


def write_pcap(path: Path, frames) -> Path:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, data in frames:
            sec = int(ts)
            f.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(data), len(data)))
            f.write(data)
    return path


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("block_bytes,batch", [(32768, None), (8192, 300), (700, 3)])
def test_synthetic_every_way_out(tmp_path, seed, block_bytes, batch, monkeypatch):
    frames = synthetic_frames(seed)
    path = write_pcap(tmp_path / "s.pcap", frames)
    vec, pkt = both(path, block_bytes, batch, monkeypatch)
    assert_same(vec, pkt)
    stats = run_vector(path, block_bytes).stats
    assert stats["bulk_frames"] > 0.5 * len(frames) and stats["frame_frames"] > 0 and stats["conflict_groups"] > 0
    sas = pkt["sas"]
    # the capture hits what it is meant to
    assert sum(r["replays"] for r in sas) and sum(r["gaps"] for r in sas) and sum(r["seq_resets"] for r in sas)
    assert any(r["state"] == "accepted" for r in pkt["flows"]) and any(r["state"] == "rejected" for r in pkt["flows"])
    assert pkt["accounting"]["reassembly"]["reassembled"] > 0
    cats = pkt["accounting"]["by_category"]
    assert cats["malformed:truncated:isakmp"] and cats["malformed:bad_length:isakmp"]
    assert cats["analysed:natt-keepalive"] and any(r["natt"] for r in pkt["exchanges"])
    assert any(r["ip_fragments"] for r in pkt["exchanges"])


def test_flow_whose_two_ends_are_one(tmp_path, monkeypatch):
    """A TCP flow from an address and port to themselves (a self-connect), seen first at its
    SYN-ACK: its two ends look alike, so every packet is from the same end; the bulk path
    counts its packets in the direction the frame-by-frame path does, in the batch that makes
    the flow and after."""
    a = bytes([10, 0, 0, 9])
    frames = [(1.0 + i / 10, _eth(_ip4(a, a, 6, _tcp(4000, 4000, flags)))) for i, flags in
              enumerate([0x12, 0x10, 0x18, 0x10, 0x11, 0x10])]
    path = write_pcap(tmp_path / "self.pcap", frames)
    for batch in (None, 2):
        vec, pkt = both(path, 1 << 20, batch, monkeypatch)
        assert_same(vec, pkt)
