"""``tables.flow_table`` (column by column, with numpy) against the way it was made before:
row by row from ``Flows.keys()``, sorted by the whole key.  Same rows, same order, the same
Python types in every field, on every fixture, on captures given twice (every flow then
ties another on capture name and first frame), and on the benchmark capture scaled down."""
from __future__ import annotations

import random
import struct
import subprocess
import sys

from ipsecpcap.analysis import analyze
from ipsecpcap.ikesa import addr_text, split
from ipsecpcap.records import FlowRow
from ipsecpcap.tables import flow_table, proto_name, tcp_state, udp_state

try:
    from reference import all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import all_captures

from test_decrypt_inline import eth, ipv6, udp
from test_vector import GENERATOR, SYNTHETIC, _eth, _ip4, _tcp, _udp, write_pcap


def reference_flow_table(tr) -> list[FlowRow]:
    """The flows table as it was made before (session 7), row by row."""
    fl = tr.flows
    captures = tr.captures
    rows = []
    for ((proto, addrs, sport, dport), pk_fwd, pk_rev, by_fwd, by_rev, first_ts, last_ts, first_frame, last_frame,
         bits, protected, cap) in zip(fl.keys(), fl.pk_fwd, fl.pk_rev, fl.by_fwd, fl.by_rev, fl.first_ts, fl.last_ts,
                                      fl.first_frame, fl.last_frame, fl.tcp, fl.protected, fl.first_cap):
        src, dst = split(addrs)
        rows.append(FlowRow(
            proto=proto_name(proto), src=addr_text(src), sport=sport, dst=addr_text(dst), dport=dport,
            packets=pk_fwd + pk_rev, bytes=by_fwd + by_rev, packets_fwd=pk_fwd, packets_rev=pk_rev,
            bytes_fwd=by_fwd, bytes_rev=by_rev, first_seen=first_ts, last_seen=last_ts,
            first_frame=first_frame, last_frame=last_frame,
            state=tcp_state(bits) if proto == 6 else udp_state(bits, pk_rev) if proto == 17 else None,
            protected_by=protected, capture=captures[cap],
        ))
    rows.sort(key=lambda r: (r.capture, r.first_frame, r.proto, r.src, r.sport, r.dst, r.dport))
    return rows


def assert_same(tr) -> int:
    new, old = flow_table(tr), reference_flow_table(tr)
    assert new == old
    # equal is not enough: a numpy number would not go into JSON the same way
    for a, b in zip(new, old):
        assert [type(getattr(a, f)) for f in FlowRow.__slots__] == [type(getattr(b, f)) for f in FlowRow.__slots__]
    return len(new)


def test_every_fixture():
    flows = 0
    for c in all_captures():
        flows += assert_same(analyze([c.path]).tracker)
    for path in SYNTHETIC:
        flows += assert_same(analyze([path]).tracker)
    assert flows > 30  # (IPsec captures: few flows in clear; the tests below have more)


def flows_frames(seed: int) -> list[tuple[float, bytes]]:
    """TCP (every handshake step), UDP (some answered), IPv6 UDP, GRE and ICMP errors, one
    new flow in most frames, random ends and ports."""
    rng = random.Random(seed)
    frames, sent = [], []
    for k in range(400):
        src = bytes([10, 0, rng.randrange(3), rng.randrange(1, 255)])
        dst = bytes([10, 1, rng.randrange(3), rng.randrange(1, 255)])
        kind = rng.randrange(7)
        if kind < 2:
            ip = _ip4(src, dst, 6, _tcp(rng.randrange(1024, 65535), rng.choice([22, 80]),
                                        rng.choice([0x02, 0x12, 0x10, 0x04, 0x11])))
        elif kind < 4:
            sport, dport = rng.randrange(1024, 65535), rng.choice([53, 123])
            ip = _ip4(src, dst, 17, _udp(sport, dport, b"q" * 8))
            sent.append((src, dst, sport, dport, ip))
        elif kind == 4 and sent:  # an answer, or an ICMP error quoting what was sent
            a, b, sport, dport, quoted = rng.choice(sent)
            ip = _ip4(b, a, 17, _udp(dport, sport, b"r" * 8)) if rng.random() < 0.5 else \
                _ip4(b, a, 1, struct.pack("!BBHI", 3, 3, 0, 0) + quoted[:28])
        elif kind == 5:
            frames.append((1_700_000_000 + k * 0.01, eth(ipv6(udp(rng.randrange(1024, 65535), 53, b"v" * 8)),
                                                          ethertype=0x86DD)))
            continue
        else:
            ip = _ip4(src, dst, 47, b"\x00\x00\x08\x00" + bytes(20))
        frames.append((1_700_000_000 + k * 0.01, _eth(ip)))
    return frames


def test_ties_of_capture_name_and_first_frame(tmp_path):
    """Two captures of one name given together: flows of both began in the same frames,
    and the rest of the key (protocol, ends, ports) orders them."""
    paths = []
    for seed in (1, 2):
        (tmp_path / str(seed)).mkdir()
        paths.append(write_pcap(tmp_path / str(seed) / "capture.pcap", flows_frames(seed)))
    tr = analyze(paths).tracker
    assert assert_same(tr) > 400
    rows = flow_table(tr)
    ties = sum(1 for a, b in zip(rows, rows[1:]) if (a.capture, a.first_frame) == (b.capture, b.first_frame))
    assert ties > 100
    assert {r.state for r in rows} >= {"accepted", "rejected", "unanswered", "midstream", None}
    assert any(":" in r.src for r in rows)  # IPv6


def test_benchmark_capture(tmp_path):
    out = tmp_path / "bench_20k.pcap"
    subprocess.run([sys.executable, str(GENERATOR), "--count", "20000", "--out", str(out), "--seed", "7"],
                   check=True, capture_output=True)
    assert assert_same(analyze([out]).tracker) > 300


def test_no_flows():
    from ipsecpcap.tracker import Tracker

    assert flow_table(Tracker("x")) == []
