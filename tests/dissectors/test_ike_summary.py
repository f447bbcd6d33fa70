"""summarize_ike: what the analysis keeps of an IKE message (dissectors/ike.py).

It reads well-formed encrypted messages without the full dissectors, so it
is checked against them: for every message, ``summarize_ike(data)`` must be
``IkeSummary.of(parse_ike(data))`` field for field (the payloads' fields
included).  The messages are every IKE message of the fixture captures (as
the tracker receives them: non-ESP marker removed, IP fragments
reassembled), the same messages with their lengths changed, cut or
lengthened, and hand-made encrypted messages of both versions.
"""
from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze_capture
from ipsecpcap.dissectors.ike import parse_ike, summarize_ike
from ipsecpcap.dissectors.records import IkeSummary

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CAPTURES = sorted(p for d in ("public", "strongswan", "synthetic") for p in (FIXTURES / d).rglob("*")
                  if p.suffix in (".pcap", ".pcapng", ".cap"))

# RFC 2408 3.1 / RFC 7296 3.1 header: SPIi, SPIr, next payload, version, exchange, flags, message ID, length
HEADER = struct.Struct("!8s8sBBBBII")


def same(a: IkeSummary, b: IkeSummary) -> bool:
    """Equal, the payloads' fields too (Payload leaves them out of ==)."""
    return a == b and [p.fields for p in a.payloads] == [p.fields for p in b.payloads]


def check(data: bytes) -> IkeSummary:
    fast, full = summarize_ike(data), IkeSummary.of(parse_ike(data))
    assert same(fast, full), (data[:40].hex(), fast, full)
    return fast


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    out = []
    for path in CAPTURES:
        try:
            out.extend(ev.raw for ev in analyze_capture(path).ike_events)
        except Exception:  # noqa: BLE001 - a capture the reader refuses holds no messages for this test
            continue
    return out


def test_real_messages(messages):
    assert len(messages) > 1000
    encrypted = sum(check(m).encrypted for m in messages)
    assert encrypted > 100  # the quick path was exercised


def test_real_messages_changed(messages):
    """Lengths off by a little, cut short, bytes after the end, another version or flags."""
    rng = random.Random(2408)
    for m in messages:
        if len(m) < 32:
            check(m)
            continue
        n = len(m)
        variants = [m[:-1], m[:28], m[:31], m + b"\x00", m + b"\x00" * 4]
        for delta in (-1, 1, -n, 4):
            variants.append(m[:24] + struct.pack("!I", (n + delta) % (1 << 32)) + m[28:])
        for plen in (0, 3, 4, n - 28 - 1, n - 28 + 1, n - 28):
            variants.append(m[:30] + struct.pack("!H", plen % (1 << 16)) + m[32:])
        variants.append(m[:17] + bytes([rng.choice((0x10, 0x20, 0x30))]) + m[18:])
        variants.append(m[:19] + bytes([m[19] ^ 0x01]) + m[20:])
        variants.append(m[:16] + bytes([rng.choice((46, 53, 0, 33))]) + m[17:])
        for v in variants:
            check(v)


def _message(version: int, first: int, flags: int, body: bytes) -> bytes:
    return HEADER.pack(b"\x11" * 8, b"\x22" * 8, first, version << 4, 37 if version == 2 else 5, flags, 7,
                       28 + len(body)) + body


def test_encrypted_messages():
    ikev2_sk = _message(2, 46, 0x08, struct.pack("!BBH", 41, 0x80, 4 + 48) + b"\xab" * 48)
    s = check(ikev2_sk)
    assert s.encrypted and s.payload_names == ("SK",) and s.payloads == () and s.exchange == "INFORMATIONAL"
    assert s.initiator_flag is True and s.response_flag is False
    ikev1 = _message(1, 8, 0x01, b"\xcd" * 48)
    s = check(ikev1)
    assert s.encrypted and s.payload_names == ("encrypted",) and s.payloads == ()
    assert s.initiator_flag is None and s.response_flag is None
    # a payload in clear before SK stays; SKF, and a message with trailing bytes, go the long way
    notify = struct.pack("!BBHBBH", 46, 0, 8, 0, 0, 16390)
    check(_message(2, 41, 0x08, notify + struct.pack("!BBH", 41, 0, 36) + b"\x01" * 32))
    check(_message(2, 53, 0x08, struct.pack("!BBHHH", 41, 0, 40, 1, 2) + b"\x02" * 32))
    check(ikev2_sk + b"\x00\x00")
    check(b"")
    check(ikev2_sk[:27])


def test_summary_of_a_summary():
    s = summarize_ike(_message(1, 8, 0x01, b"\x00" * 16))
    assert IkeSummary.of(s) is s
