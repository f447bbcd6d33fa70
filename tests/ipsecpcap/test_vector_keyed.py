"""With keys: the vectorised path (``KeyedClassifier``: flows, IKE, keep-alives and the ESP
packets' accounting in bulk, every ESP packet opened and AH verified by the keyed decoder)
against the keyed decoder frame by frame (``IPSECPCAP_FASTPATH=packet``).

Every table, the key report and every SA's crypto state (what was opened, what failed and
why, the key it was bound to, the tries, extended sequence numbers) must come out the same,
on every capture published with keys, on the encrypted benchmark capture scaled down, and
on the synthetic capture of ``test_decrypt_inline`` (every way an ESP packet can fail to
open, transport mode, nested ESP, wrapping counters, an SA without a key, AH over
everything, VLAN tags), each with the default blocks and batches and with tiny ones.
"""
from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys

import pytest

import ipsecpcap.vector as vector
from ipsecpcap.analysis import analyze

try:
    from reference import all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import all_captures

from test_decrypt_inline import (SA_SHORT_UDP, Gcm, build, eth, ipv4, short_udp_frames, tcp, trailer, udp,
                                 write_pcap)
from test_vector import GENERATOR, tables


def keyed_result(paths, keys, jobs=1, block_bytes=4 << 20):
    """Everything an analysis with keys shows, and the crypto state behind it."""
    a = analyze(paths, keys=keys, jobs=jobs, block_bytes=block_bytes)
    crypto = a.crypto  # (None with IKE keys only)
    states = {sa: (st.decrypted, st.integrity_failures, st.other_failures, st.tries, st.esn, st.seq_hi, st.last_seq,
                   st.failures_by_kind, st.key.fingerprint if st.key is not None else None, st.cipher is not None)
              for sa, st in (crypto.states.items() if crypto is not None else ())}
    return (tables(a.tracker), a.key_report(), states, crypto and crypto.problems, crypto and crypto.wraps,
            [(r.spi, r.decrypted, r.integrity_failures) for r in a.sas], [dataclasses.asdict(r) for r in a.ike])


def both(paths, keys, monkeypatch, tiny=False):
    """(vectorised, frame by frame); ``tiny``: blocks of 512 bytes and batches of 5 frames."""
    block_bytes = 512 if tiny else 4 << 20
    if tiny:
        monkeypatch.setattr(vector, "BATCH", 5)
    monkeypatch.setenv("IPSECPCAP_FASTPATH", "vector")
    vec = keyed_result(paths, keys, block_bytes=block_bytes)
    monkeypatch.setenv("IPSECPCAP_FASTPATH", "packet")
    pkt = keyed_result(paths, keys, block_bytes=block_bytes)
    return vec, pkt


def assert_same(vec, pkt) -> None:
    for name, v, p in zip(("tables", "key report", "crypto states", "problems", "wraps", "sas", "ike"), vec, pkt):
        if name == "tables":
            for t in p:
                assert v[t] == p[t], f"{t} differs between the vectorised and the frame-by-frame path"
        assert v == p, f"{name} differs between the vectorised and the frame-by-frame path"


KEYED = [c for c in all_captures() if c.keys]


@pytest.mark.parametrize("tiny", [False, True])
def test_every_fixture_with_keys_same(tiny, monkeypatch):
    assert len(KEYED) > 100
    opened = 0
    for c in KEYED:
        vec, pkt = both([c.path], list(c.keys), monkeypatch, tiny)
        assert_same(vec, pkt)
        opened += sum(s[0] for s in pkt[2].values())
    assert opened > 2000  # the comparison means something: packets were opened (2646)


SA_INNER = 0x9001


def more_frames(t: float) -> tuple[list, list[str]]:
    """Frames from time ``t`` on for the edges of the keyed bulk path, and their SAs' esp_sa
    lines.  ESP in UDP 4500 followed by bytes that are not UDP (``short_udp_frames``: the
    packets open).  In a tunnel: TCP with TFC padding after it (RFC 4303 2.7: the IP length,
    not the payload's, is the flow's), the same flow in clear before and after, TCP cut
    short (the header without its flags; or the packet shorter than its IP length), UDP on
    4500 (NAT-T inside) and an ICMP error quoting a flow of the tunnel."""
    frames, short_key, _ = short_udp_frames(t)
    gcm = Gcm(9)

    def add(frame):
        frames.append((round(t + 0.001 * (len(frames) + 1), 6), frame))

    a, b = "192.168.9.1", "192.168.9.2"
    seq = iter(range(1, 100))

    def tunnel(inner: bytes, tfc: bytes = b""):
        add(eth(ipv4("10.0.9.1", "10.0.9.2", 50, gcm.seal(SA_INNER, next(seq), trailer(inner + tfc, 4, 4)))))

    flow = ipv4(a, b, 6, tcp(1234, 80, b"x" * 30))
    add(eth(flow))
    tunnel(flow, tfc=bytes(16))
    tunnel(ipv4(b, a, 6, tcp(80, 1234, b"y" * 20)))
    add(eth(flow))
    cut = bytearray(ipv4(a, b, 6, tcp(1235, 80, b"")[:10]))
    cut[2:4] = struct.pack("!H", 40)  # the header says 40 bytes: only 30 are there
    tunnel(bytes(cut))
    tunnel(ipv4(a, b, 6, tcp(1236, 80, b"z" * 40))[:-10])
    tunnel(ipv4(a, b, 17, udp(4500, 4500, bytes(range(24)))))
    tunnel(ipv4(a, b, 17, udp(4501, 4500, bytes(range(24)))))
    tunnel(ipv4(a, b, 17, udp(500, 4501, bytes(range(40)))))
    tunnel(ipv4(a, b, 17, udp(4500, 4500, b"\xff")))
    quoted = ipv4(a, b, 17, udp(5353, 53, b"q" * 12))
    tunnel(quoted)
    tunnel(ipv4(b, a, 1, struct.pack("!BBHI", 3, 3, 0, 0) + quoted[:28]))
    tunnel(quoted)
    return frames, [short_key, gcm.esp_sa("10.0.9.1", "10.0.9.2", SA_INNER)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("keyed")
    frames, keys, common, fail = build()
    more, more_keys = more_frames(frames[-1][0])
    frames, keys = frames + more, keys + more_keys
    (d / "esp_sa").write_text("\n".join(keys) + "\n")
    write_pcap(d / "s.pcap", frames)
    return d / "s.pcap", d / "esp_sa", fail


@pytest.mark.parametrize("tiny", [False, True])
def test_synthetic_every_way_out_same(synthetic, tiny, monkeypatch):
    cap, keys, fail = synthetic
    vec, pkt = both([cap], [keys], monkeypatch, tiny)
    assert_same(vec, pkt)
    states = pkt[2].values()
    assert sum(s[0] for s in states) > 50
    assert sum(s[1] for s in states) >= fail["integrity_failure"] > 0
    assert pkt[4]  # a 32-bit counter wrapped: found by the keyed decoder either way
    (short,) = [s for sa, s in pkt[2].items() if sa[1] == SA_SHORT_UDP]
    assert short[:2] == (6, 0)  # ESP in UDP ends with the UDP datagram: every packet opened


def test_synthetic_twice_shares_the_crypto_state(synthetic, monkeypatch):
    """Captures given together: the second one starts from the bindings of the first."""
    cap, keys, _ = synthetic
    assert_same(*both([cap, cap], [keys], monkeypatch))


@pytest.mark.parametrize("tiny", [False, True])
def test_synthetic_jobs2_same(synthetic, tiny, monkeypatch):
    """--jobs 2: the child's classifier opens the packets, this process groups and applies."""
    cap, keys, _ = synthetic
    _, pkt = both([cap], [keys], monkeypatch, tiny)
    monkeypatch.setenv("IPSECPCAP_FASTPATH", "vector")
    assert_same(keyed_result([cap], [keys], jobs=2, block_bytes=512 if tiny else 4 << 20), pkt)


@pytest.fixture(scope="module")
def encrypted_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "enc_20k.pcap"
    subprocess.run([sys.executable, str(GENERATOR), "--count", "20000", "--out", str(out), "--seed", "3",
                    "--encrypt"], check=True, capture_output=True)
    return out, out.with_name(out.name + ".esp_sa")


@pytest.mark.parametrize("tiny", [False, True])
def test_encrypted_benchmark_capture_same(encrypted_bench, tiny, monkeypatch):
    cap, keys = encrypted_bench
    vec, pkt = both([cap], [keys], monkeypatch, tiny)
    assert_same(vec, pkt)
    cats = pkt[0]["accounting"]["by_category"]
    assert cats["analysed:esp"] > 10000 and cats["analysed:ah+esp"] > 50
    assert sum(s[0] for s in pkt[2].values()) > 10000


def test_keyed_bulk_path_is_taken(encrypted_bench):
    """The ESP packets are opened from the bulk path, not decoded frame by frame: the decoder
    sees only the AH frames (verified) and nothing else."""
    from ipsecpcap.keys import load_keys
    from ipsecpcap.reader import open_capture
    from ipsecpcap.sacrypto import SaCrypto
    from ipsecpcap.tracker import Tracker

    cap, keys = encrypted_bench
    crypto = SaCrypto(load_keys([keys]))
    vd = vector.VectorDecoder(Tracker("x"), crypto=crypto)
    with open_capture(cap) as r:
        for b in r:
            vd.run_block(b)
    vd.finish()
    assert vd.stats["frame_frames"] == 0
    assert vd.stats["decoded"] == vd.counts["analysed:ah"] + vd.counts["analysed:ah+esp"]
    assert sum(st.decrypted for st in crypto.states.values()) > 10000
