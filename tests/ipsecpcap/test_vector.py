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

import pytest

import ipsecpcap.vector as vector
from ipsecpcap.analysis import Analysis, analyze_capture

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
    out["flow_order"] = list(tracker.flows)
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
    # only IKE and NAT-T keep-alives go through the frame-by-frame decoder (AH is taken in bulk)
    assert vd.stats["decoded"] == vd.counts["analysed:ike"] + vd.counts["analysed:natt-keepalive"]


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
        elif r < 0.90:  # IKE on 500, NAT-T keep-alive, an ESP header cut short
            a, b = rng.sample(hosts, 2)
            q = rng.random()
            if q < 0.4:
                ike = bytes(8) * 2 + bytes((33, 0x20, 34, 0x08)) + struct.pack("!II", 0, 28)
                ip = _ip4(a, b, 17, _udp(500, 500, ike))
            elif q < 0.8:
                ip = _ip4(a, b, 17, _udp(4500, 4500, b"\xff"))
            else:
                ip = _ip4(a, b, 50, b"\x00\x00\x10\x01")
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
