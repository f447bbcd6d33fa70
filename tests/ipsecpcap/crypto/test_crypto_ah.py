"""AH ICV verification against a reference written here from RFC 4302 3.3.3 and appendix A.

No AH capture with published keys exists (zeek-spicy-ipsec/IPsec_ESP-AH_tunnel_mode.cap,
arkime/ah-esp.pcap and tcpdump/OSPFv3_with_AH.pcap have none), so the packets are built
here with known keys: IPv4 with options, IPv6 with hop-by-hop and destination options
(including an option that may change en route) and a type 0 routing header.  The reference
rebuilds the "as the receiver computes it" packet field by field (RFC 4302 3.3.3.1) and
computes the ICV with hmac/cryptography directly.  The real AH captures are used for
robustness: their headers must parse, and without the key nothing verifies.
"""
from __future__ import annotations

import random
import struct

import pytest
from crypto_helpers import HMACS, PUBLIC, icv_reference, ip_packets, key

from ipsecpcap.crypto import ah as ah_mod
from ipsecpcap.crypto.ah import ah_icv_ok

CHECKED = list(HMACS) + ["aes-xcbc-96", "aes-cmac-96"]
ICV_LEN = {**{k: v[1] for k, v in HMACS.items()}, "aes-xcbc-96": 12, "aes-cmac-96": 12}
KEYLEN = {**{k: 20 for k in HMACS}, "aes-xcbc-96": 16, "aes-cmac-96": 16}
SRC, DST = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
IMMUTABLE_V4 = {0, 1, 130, 133, 134, 148, 149}  # RFC 4302 appendix A.1


def ahkey(integ, k):
    return key("null", b"", integ, k, protocol="ah")


def ah_header(nh, icv_len, align, spi=0x1000, seq=1, padding_byte=0xAB):
    length = -(-(12 + icv_len) // align) * align
    pad = bytes([padding_byte]) * (length - 12 - icv_len)  # explicit ICV padding (RFC 4302 2.6)
    return bytes([nh, length // 4 - 2]) + b"\x00\x00" + struct.pack("!II", spi, seq) + bytes(icv_len) + pad


# ----------------------------------------------------------------------------- IPv4 reference


def v4_reference_input(pkt: bytes, icv_len: int) -> bytes:
    """The bytes the ICV covers (RFC 4302 3.3.3.1.1), rebuilt from the fields."""
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = struct.unpack("!BBHHHBBH4s4s", pkt[:20])
    ihl = (vihl & 15) * 4
    opts, out, i = pkt[20:ihl], b"", 0
    while i < len(opts):
        t = opts[i]
        if t == 0:  # end of list: the rest as it is
            out += opts[i:]
            break
        if t == 1:
            out += b"\x01"
            i += 1
            continue
        ln = opts[i + 1]
        if t in IMMUTABLE_V4:
            out += opts[i:i + ln]
        else:
            if t in (131, 137) and opts[i + 2] <= ln:  # source route not complete: final destination
                dst = opts[i + ln - 4:i + ln]
            out += bytes(ln)
        i += ln
    hdr = struct.pack("!BBHHHBBH4s4s", vihl, 0, total, ident, 0, 0, proto, 0, src, dst)
    ah = pkt[ihl:ihl + 12] + bytes(icv_len) + pkt[ihl + 12 + icv_len:]
    return hdr + out + ah


def checksum(hdr: bytes) -> int:
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build_v4(integ, k, payload=b"tcp segment....", options=b"", nh=6, ttl=64, tos=0, align=4,
             seq_hi=None, dst=DST, ident=0x1234, flags=0x4000):
    icv_len = ICV_LEN[integ]
    ah = ah_header(nh, icv_len, align)
    ihl = 20 + len(options)
    assert ihl % 4 == 0
    total = ihl + len(ah) + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl // 4, tos, total, ident, flags, ttl, 51, 0, SRC, dst) + options
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    pkt = hdr + ah + payload
    data = v4_reference_input(pkt, icv_len) + (b"" if seq_hi is None else struct.pack("!I", seq_hi))
    icv = icv_reference(integ, k, data)
    return pkt[:ihl + 12] + icv + pkt[ihl + 12 + icv_len:], ihl


def edit(pkt: bytes, at: int, value: bytes) -> bytes:
    return pkt[:at] + value + pkt[at + len(value):]


# options: NOP, Router Alert (immutable), Record Route (mutable), Timestamp (mutable), Security (immutable)
RR = bytes([7, 11, 4]) + bytes(8)  # record route with room for two addresses
TS = bytes([68, 12, 5, 0]) + bytes(8)  # timestamp, two slots
RA = bytes([148, 4, 0, 0])
SEC = bytes([130, 11]) + bytes(range(9))
V4_OPTIONS = b"\x01" + RA + RR + TS + SEC + b"\x00"  # 1+4+11+12+11 + End of List = 40, the maximum


@pytest.mark.parametrize("integ", CHECKED)
def test_ipv4_every_integrity_algorithm(integ):
    k = random.Random(integ).randbytes(KEYLEN[integ])
    pkt, ihl = build_v4(integ, k)
    assert ah_icv_ok(ahkey(integ, k), pkt, ihl)
    assert not ah_icv_ok(ahkey(integ, bytes(len(k))), pkt, ihl)  # wrong key
    bad = bytearray(pkt)
    bad[ihl + 12] ^= 1  # one bit of the ICV
    assert not ah_icv_ok(ahkey(integ, k), bytes(bad), ihl)


def test_ipv4_mutable_fields_and_options_may_change():
    k = bytes(range(20))
    pkt, ihl = build_v4("hmac-sha1-96", k, options=V4_OPTIONS)
    kk = ahkey("hmac-sha1-96", k)
    assert ah_icv_ok(kk, pkt, ihl)
    rr_at, ts_at = 20 + 1 + 4, 20 + 1 + 4 + 11
    changes = {
        "ttl": (8, b"\x01"), "tos/dscp+ecn": (1, b"\xb8"), "checksum": (10, b"\xde\xad"),
        "flags+offset": (6, b"\x00\x00"),
        "record route filled in": (rr_at + 2, bytes([8]) + SRC + bytes(4)),
        "timestamp filled in": (ts_at + 2, bytes([9, 0]) + b"\x00\x01\x02\x03"),
    }
    for what, (at, value) in changes.items():
        assert ah_icv_ok(kk, edit(pkt, at, value), ihl), what


def test_ipv4_immutable_fields_may_not_change():
    k = bytes(range(20))
    pkt, ihl = build_v4("hmac-sha1-96", k, options=V4_OPTIONS)
    kk = ahkey("hmac-sha1-96", k)
    ra_at, sec_at = 21, 20 + 1 + 4 + 11 + 12
    changes = {
        "source": (12, b"\x0a"), "destination": (19, b"\x09"), "identification": (4, b"\x99"),
        "router alert value": (ra_at + 3, b"\x01"), "security option": (sec_at + 5, b"\xff"),
        "AH next header": (ihl, b"\x11"), "AH reserved": (ihl + 2, b"\x01"), "AH SPI": (ihl + 7, b"\x02"),
        "AH sequence": (ihl + 11, b"\x02"), "payload": (len(pkt) - 1, b"\x00"),
    }
    for what, (at, value) in changes.items():
        assert not ah_icv_ok(kk, edit(pkt, at, value), ihl), what


def test_ipv4_total_length_is_covered_and_trailers_are_not():
    k = bytes(range(20))
    pkt, ihl = build_v4("hmac-sha1-96", k)
    kk = ahkey("hmac-sha1-96", k)
    assert ah_icv_ok(kk, pkt + b"\x00" * 6, ihl)  # Ethernet padding after the IP packet
    assert not ah_icv_ok(kk, pkt[:-1], ihl)  # truncated
    longer = edit(pkt, 2, struct.pack("!H", len(pkt) - 1))
    assert not ah_icv_ok(kk, longer, ihl)


def test_ipv4_source_route_destination_is_the_final_one():
    """LSRR: the sender computes the ICV over the final destination (mutable but predictable)."""
    k = bytes(range(20))
    hop1, hop2, final = bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2]), bytes([203, 0, 113, 9])
    lsrr = bytes([131, 11, 4]) + hop2 + final + b"\x00"  # pointer 4: hop2 is next, final last
    pkt, ihl = build_v4("hmac-sha2-256-128", k, options=lsrr, dst=hop1)
    kk = ahkey("hmac-sha2-256-128", k)
    assert ah_icv_ok(kk, pkt, ihl)
    # at hop1: dst := hop2, hop1 recorded in its place, pointer 8 (RFC 791)
    at_hop1 = edit(edit(pkt, 16, hop2), 20, bytes([131, 11, 8]) + hop1)
    assert ah_icv_ok(kk, at_hop1, ihl)
    # at the destination: dst := final, route fully recorded, pointer 12 > length 11
    at_final = edit(edit(at_hop1, 16, final), 20, bytes([131, 11, 12]) + hop1 + hop2)
    assert ah_icv_ok(kk, at_final, ihl)
    assert not ah_icv_ok(kk, edit(at_final, 16, hop2), ihl)


@pytest.mark.parametrize("align", [4, 8])
def test_ipv4_icv_padding_both_alignments(align):
    """HMAC-SHA-256-128: 28-byte AH (32-bit aligned, RFC 4302) or 32 (Linux pads IPv4 to 64 bits too)."""
    k = bytes(range(32))
    pkt, ihl = build_v4("hmac-sha2-256-128", k, align=align)
    kk = ahkey("hmac-sha2-256-128", k)
    assert ah_icv_ok(kk, pkt, ihl)
    if align == 8:  # the padding is covered as sent, not zeroed (RFC 4302 3.4.4)
        assert not ah_icv_ok(kk, edit(pkt, ihl + 12 + 16, b"\x00"), ihl)
    # a Payload Length that does not fit the algorithm's ICV
    assert not ah_icv_ok(kk, edit(pkt, ihl + 1, bytes([pkt[ihl + 1] + 1])), ihl)
    assert not ah_icv_ok(ahkey("hmac-sha2-512-256", bytes(64)), pkt, ihl)


def test_ipv4_esn_high_bits_are_appended():
    k = bytes(range(20))
    pkt, ihl = build_v4("hmac-sha1-96", k, seq_hi=0x00000002)
    kk = ahkey("hmac-sha1-96", k)
    assert ah_icv_ok(kk, pkt, ihl, 2)
    assert not ah_icv_ok(kk, pkt, ihl, None)
    assert not ah_icv_ok(kk, pkt, ihl, 3)


def test_tunnel_mode_inner_packet_is_immutable():
    k = bytes(range(16))
    inner, _ = build_v4("hmac-md5-96", k)  # any inner IPv4 packet
    pkt, ihl = build_v4("aes-xcbc-96", k, payload=inner, nh=4)
    kk = ahkey("aes-xcbc-96", k)
    assert ah_icv_ok(kk, pkt, ihl)
    assert not ah_icv_ok(kk, edit(pkt, len(pkt) - len(inner) + 8, b"\x01"), ihl)  # inner TTL


# ----------------------------------------------------------------------------- IPv6 reference


def v6_reference_input(pkt: bytes, ah_off: int, icv_len: int) -> bytes:
    """RFC 4302 3.3.3.1.2: fields zeroed, mutable option data zeroed, routing header as at the destination."""
    plen, nh = struct.unpack("!HB", pkt[4:7])
    src, dst = pkt[8:24], pkt[24:40]
    exts, off = [], 40
    while off < ah_off:
        ln = (pkt[off + 1] + 1) * 8
        h = bytearray(pkt[off:off + ln])
        if nh in (0, 60):
            i = 2
            while i < ln:
                if h[i] == 0:
                    i += 1
                    continue
                olen = h[i + 1]
                if h[i] & 0x20:
                    h[i + 2:i + 2 + olen] = bytes(olen)
                i += 2 + olen
        elif nh == 43 and h[2] == 0:
            n = h[1] // 2
            addrs = [bytes(h[8 + 16 * j:24 + 16 * j]) for j in range(n)]
            left = h[3]
            while left:  # RFC 2460 4.4, the remaining hops
                left -= 1
                idx = n - left - 1
                dst, addrs[idx] = addrs[idx], dst
            h[3] = 0
            h[8:] = b"".join(addrs)
        exts.append(bytes(h))
        nh, off = h[0], off + ln
    hdr = bytes([pkt[0] & 0xF0, 0, 0, 0]) + pkt[4:7] + b"\x00" + src + dst
    ah = pkt[ah_off:ah_off + 12] + bytes(icv_len) + pkt[ah_off + 12 + icv_len:]
    return hdr + b"".join(exts) + ah


def v6_options_header(nh, options: bytes) -> bytes:
    body = bytes([nh, 0]) + options
    body += bytes(-len(body) % 8)  # Pad1 bytes (type 0)
    return bytes([nh, len(body) // 8 - 1]) + body[2:]


def routing0(nh, addresses, left) -> bytes:
    return bytes([nh, 2 * len(addresses), 0, left]) + bytes(4) + b"".join(addresses)


def build_v6(integ, k, exts=(), payload=b"udp datagram", ah_nh=17, hlim=64, tc=0, flow=0,
             seq_hi=None, dst=bytes(15) + b"\x02", src=bytes(15) + b"\x01"):
    """exts: list of (type, header bytes) whose next-header byte is patched here."""
    icv_len = ICV_LEN[integ]
    chain = list(exts) + [(51, ah_header(ah_nh, icv_len, 8))]
    body, first = b"", chain[0][0]
    for i, (t, h) in enumerate(chain[:-1]):
        body += bytes([chain[i + 1][0]]) + h[1:]
    ah_off = 40 + len(body)
    body += chain[-1][1] + payload
    vtf = (6 << 28) | (tc << 20) | flow
    pkt = struct.pack("!IHBB", vtf, len(body), first, hlim) + src + dst + body
    data = v6_reference_input(pkt, ah_off, icv_len) + (b"" if seq_hi is None else struct.pack("!I", seq_hi))
    icv = icv_reference(integ, k, data)
    return pkt[:ah_off + 12] + icv + pkt[ah_off + 12 + icv_len:], ah_off


A = [bytes(15) + bytes([i]) for i in range(10, 14)]
ROUTER_ALERT = bytes([5, 2, 0, 0])  # RFC 2711: type 5, "may change" bit clear
MUTABLE_OPT = bytes([0x3E, 4]) + b"\x11\x22\x33\x44"  # RFC 4727 experimental type 0x3e: chg bit set
PADN = bytes([1, 0])


def v6_packet(integ="hmac-sha2-256-128", **kw):
    k = bytes(range(KEYLEN[integ] if integ in KEYLEN else 20))
    exts = [(0, v6_options_header(0, ROUTER_ALERT + MUTABLE_OPT + PADN)),
            (60, v6_options_header(0, bytes([0x1E, 2, 0xAA, 0xBB]))),  # dest opts, immutable option
            (43, routing0(0, [A[1], A[2]], 2))]
    pkt, off = build_v6(integ, k, exts=exts, dst=A[0], **kw)
    return pkt, off, ahkey(integ, k)


@pytest.mark.parametrize("integ", CHECKED)
def test_ipv6_every_integrity_algorithm(integ):
    pkt, off, kk = v6_packet(integ)
    assert ah_icv_ok(kk, pkt, off)
    bad = bytearray(pkt)
    bad[off + 12] ^= 1
    assert not ah_icv_ok(kk, bytes(bad), off)


def test_ipv6_mutable_fields_may_change():
    pkt, off, kk = v6_packet()
    hbh_data = 40 + 2 + len(ROUTER_ALERT) + 2  # data of the 0x3e option
    changes = {
        "hop limit": (7, b"\x01"), "traffic class + flow label": (0, b"\x6b\x8f\xff\xff"),
        "data of an option that may change en route": (hbh_data, b"\x99\x98\x97\x96"),
    }
    for what, (at, value) in changes.items():
        assert ah_icv_ok(kk, edit(pkt, at, value), off), what


def test_ipv6_immutable_fields_may_not_change():
    pkt, off, kk = v6_packet()
    ra_data, dst_opt = 40 + 4, 40 + 16 + 4
    changes = {
        "source": (23, b"\x07"), "payload length": (5, bytes([pkt[5] + 1])),
        "router alert value": (ra_data, b"\x01"), "destination option data": (dst_opt, b"\x00"),
        "option type/length of the mutable option": (40 + 2 + len(ROUTER_ALERT), b"\x3f"),
        "AH SPI": (off + 7, b"\x09"), "payload": (len(pkt) - 1, b"\x00"),
        "ICV padding": (off + 12 + 16, b"\x00"),
    }
    for what, (at, value) in changes.items():
        assert not ah_icv_ok(kk, edit(pkt, at, value), off), what


def test_ipv6_routing_header_is_predicted_along_the_path():
    """Type 0 routing: as sent, at each hop (RFC 2460 4.4 swaps) and at the destination, one ICV."""
    pkt, off, kk = v6_packet()
    rh = 40 + 16 + 8  # after hop-by-hop (16) and destination options (8)
    assert ah_icv_ok(kk, pkt, off)
    hop1 = edit(edit(edit(pkt, 24, A[1]), rh + 3, b"\x01"), rh + 8, A[0])  # dst := A1, A0 recorded
    assert ah_icv_ok(kk, hop1, off)
    final = edit(edit(edit(hop1, 24, A[2]), rh + 3, b"\x00"), rh + 24, A[1])  # dst := A2
    assert ah_icv_ok(kk, final, off)
    assert not ah_icv_ok(kk, edit(final, 24, A[3]), off)
    assert not ah_icv_ok(kk, edit(pkt, rh + 3, b"\x03"), off)  # segments left > addresses: malformed


def test_ipv6_esn_and_plain_header():
    k = bytes(range(20))
    pkt, off = build_v6("hmac-sha1-96", k, seq_hi=0xFFFFFFFF)
    kk = ahkey("hmac-sha1-96", k)
    assert off == 40
    assert ah_icv_ok(kk, pkt, off, 0xFFFFFFFF) and not ah_icv_ok(kk, pkt, off)


def test_ipv6_fragment_before_ah_is_not_computable():
    k = bytes(range(20))
    frag = bytes([0, 0, 0, 0, 0, 0, 0, 1])  # offset 0, more fragments
    pkt, off = build_v6("hmac-sha1-96", k, exts=[(44, frag)])
    assert not ah_icv_ok(ahkey("hmac-sha1-96", k), pkt, off)


# ----------------------------------------------------------------------------- robustness


def test_unusable_keys_and_offsets_are_false():
    k = bytes(range(20))
    pkt, ihl = build_v4("hmac-sha1-96", k)
    assert not ah_icv_ok(ahkey("none", b""), pkt, ihl)
    assert not ah_icv_ok(ahkey("any-96", b""), pkt, ihl)
    assert not ah_icv_ok(ahkey("hmac-whirlpool", k), pkt, ihl)
    assert not ah_icv_ok(ahkey("aes-xcbc-96", k), pkt, ihl)  # 20-byte key for a 16-byte algorithm
    for off in (-1, 0, 19, 21, 24, len(pkt), 10**6, None, "20"):
        assert ah_icv_ok(ahkey("hmac-sha1-96", k), pkt, off) is False
    for hi in (-1, 2**32, "0"):
        assert ah_icv_ok(ahkey("hmac-sha1-96", k), pkt, ihl, hi) is False


def test_fuzz_never_raises():
    rng = random.Random(4302)
    k = bytes(range(20))
    kk = ahkey("hmac-sha1-96", k)
    v4, ihl = build_v4("hmac-sha1-96", k, options=V4_OPTIONS)
    v6, off, kk6 = v6_packet("hmac-sha1-96")
    cases = []
    for base, o in ((v4, ihl), (v6, off)):
        for _ in range(300):
            bad = bytearray(base)
            for _ in range(rng.randrange(1, 5)):
                bad[rng.randrange(len(bad))] = rng.randrange(256)
            cases.append((bytes(bad), o))
            cases.append((base[:rng.randrange(len(base))], o))
            cases.append((bytes(bad), rng.randrange(-5, len(base) + 5)))
    cases += [(rng.randbytes(rng.randrange(0, 120)), rng.randrange(0, 80)) for _ in range(300)]
    for data, o in cases:
        for k_ in (kk, kk6):
            assert ah_icv_ok(k_, data, o) in (True, False)
            assert ah_icv_ok(k_, data, o, rng.randrange(2**32)) in (True, False)
    for data in (None, 5, "text", memoryview(v4)):
        assert ah_icv_ok(kk, data, ihl) in (True, False)


@pytest.mark.parametrize("capture", ["zeek-spicy-ipsec/IPsec_ESP-AH_tunnel_mode.cap", "arkime/ah-esp.pcap",
                                     "tcpdump/OSPFv3_with_AH.pcap"])
def test_real_ah_captures_parse_and_do_not_verify_without_their_key(capture):
    """No key was published: every header must still parse (the normalisation reaches AH) and nothing verifies."""
    seen = 0
    for n, raw in ip_packets(PUBLIC / capture):
        if raw[0] >> 4 == 4:
            if raw[9] != 51:
                continue
            off = (raw[0] & 15) * 4
            assert ah_mod._mask_v4(bytearray(raw), off), n
        else:
            nh, off = raw[6], 40
            while nh in (0, 43, 60):
                nh, off = raw[off], off + (raw[off + 1] + 1) * 8
            if nh != 51:
                continue
            assert ah_mod._mask_v6(bytearray(raw), off), n
        ah_len = (raw[off + 1] + 2) * 4
        icv_len = ah_len - 12
        integ = {12: "hmac-sha1-96", 16: "hmac-sha2-256-128"}.get(icv_len, "hmac-sha1-96")
        for guess in (b"\x00" * 20, b"key"):
            assert not ah_icv_ok(ahkey(integ, guess), raw, off)
        seen += 1
    assert seen > 0
