"""The NULL-encryption heuristic on hand-made ESP packets (RFC 4303 2 layout, RFC 2410)."""
from __future__ import annotations

import os
import struct

from ipsecpcap.nullesp import looks_like_null_esp, null_layout
from ipsecpcap.tracker import SAMPLE


def _ipv4(payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 1, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + payload


def _esp(inner: bytes, nh: int, icv: int, align: int = 4) -> bytes:
    pad = (-(len(inner) + 2)) % align
    return (struct.pack("!II", 0x1234, 1) + inner + bytes(range(1, pad + 1)) + bytes([pad, nh])
            + os.urandom(icv))


def _sample(pkt: bytes):
    return len(pkt), pkt[:SAMPLE], pkt[-SAMPLE:]


def test_tunnel_mode_null_with_each_icv_length():
    inner = _ipv4(b"\x08\x00\x00\x00\x00\x01\x00\x01" + bytes(range(40)))
    for icv in (12, 16, 0, 32):
        assert null_layout(*_sample(_esp(inner, 4, icv))) is not None, icv


def test_transport_udp_and_padding_to_16():
    udp = struct.pack("!HHHH", 5000, 53, 8 + 30, 0) + bytes(30)
    assert looks_like_null_esp(*_sample(_esp(udp, 17, 12, align=16)))


def test_long_packet_uses_head_and_tail():
    inner = _ipv4(bytes(1300))
    assert looks_like_null_esp(*_sample(_esp(inner, 4, 12)))


def test_encrypted_payloads_are_not_null():
    # random bytes where the ciphertext would be: the heuristic must not claim them
    false = sum(looks_like_null_esp(*_sample(struct.pack("!II", 1, 1) + os.urandom(16 + n % 200)))
                for n in range(3000))
    assert false <= 3


def test_wrong_length_or_padding_is_not_null():
    inner = _ipv4(bytes(40))
    pkt = bytearray(_esp(inner, 4, 12))
    pkt[8 + 2:8 + 4] = (len(inner) + 4).to_bytes(2, "big")  # IPv4 total length off by 4
    assert not looks_like_null_esp(*_sample(bytes(pkt)))
    udp = struct.pack("!HHHH", 1, 2, 8 + 5, 0) + bytes(5)
    pkt = bytearray(_esp(udp, 17, 12))
    pad = pkt[-14]
    if pad:
        pkt[-15] ^= 0xFF  # break the 1, 2, 3, ... padding
        assert not looks_like_null_esp(*_sample(bytes(pkt)))
    assert not looks_like_null_esp(6, b"\x00" * 6, b"\x00" * 6)
