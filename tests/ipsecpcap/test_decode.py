"""The fast path's classification, on frames built with dpkt."""
import struct

import dpkt
import pytest

from ipsecpcap.decode import Decoder
from ipsecpcap.dissectors.natt import classify_udp4500
from ipsecpcap.frames import _Recorder, FrameInfo

A4, B4 = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
A6 = bytes.fromhex("20010db8000000000000000000000001")
B6 = bytes.fromhex("20010db8000000000000000000000002")
ESP = struct.pack("!II", 0xC0FFEE01, 5) + bytes(32)
IKE_HDR = bytes.fromhex(
    "1122334455667788" "0000000000000000"  # initiator SPI, responder SPI 0
    "21" "20" "22" "08"  # next payload SA(33), version 2.0, IKE_SA_INIT(34), flags: initiator
    "00000000" "0000001c"  # message ID 0, length 28 (header only)
)


def ip4(proto, payload, src=A4, dst=B4, ident=0, frag=0):
    """An IPv4 header (RFC 791) in front of payload; frag = flags|offset/8 field."""
    payload = bytes(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst)
    return hdr + payload


def eth(ipkt, etype=0x0800):
    """Ethernet II: destination, source, ethertype."""
    return b"\x04" * 6 + b"\x02" * 6 + struct.pack("!H", etype) + bytes(ipkt)


def udp(sport, dport, payload):
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    u.ulen = 8 + len(payload)
    return u


def run(frames, lt=1):
    rec = _Recorder()
    dec = Decoder(rec)
    out = []
    for i, f in enumerate(frames, 1):
        rec.cur = FrameInfo(i, 0.0, "", "")
        rec.cur.category = dec.frame(lt, f, 0, len(f), float(i), i)
        out.append(rec.cur)
    return out


def test_esp_over_ethernet():
    (fi,) = run([eth(ip4(50, ESP))])
    assert (fi.category, fi.protocols, fi.esp_spi, fi.esp_seq) == ("analysed:esp", ["esp"], 0xC0FFEE01, 5)


def test_vlan_and_qinq():
    inner = eth(ip4(50, ESP))
    # 802.1ad outer tag (0x88a8), then 802.1Q (0x8100), then IPv4
    frame = inner[:12] + struct.pack("!HH", 0x88A8, 100) + struct.pack("!HH", 0x8100, 200) + inner[12:]
    (fi,) = run([frame])
    assert fi.category == "analysed:esp" and fi.esp_spi == 0xC0FFEE01


def test_natt_esp_keepalive_and_ike():
    frames = [eth(ip4(17, udp(4500, 4500, ESP))),
              eth(ip4(17, udp(4500, 4500, b"\xff"))),
              eth(ip4(17, udp(4500, 4500, bytes(4) + IKE_HDR))),
              eth(ip4(17, udp(500, 500, IKE_HDR)))]
    esp, ka, ike4500, ike500 = run(frames)
    assert esp.protocols == ["udpencap", "esp"] and esp.esp_udp
    assert ka.category == "analysed:natt-keepalive"
    assert ike4500.protocols == ["udpencap", "isakmp"] and ike4500.ike.natt
    assert ike500.protocols == ["isakmp"] and not ike500.ike.natt
    assert ike500.ike.ispi == "1122334455667788" and ike500.ike.exchange_type == 34


@pytest.mark.parametrize("payload", [b"\xff", bytes(4) + IKE_HDR, ESP, b"\x01\x02\x03"])
def test_fast_path_agrees_with_the_natt_dissector(payload):
    (fi,) = run([eth(ip4(17, udp(4500, 4500, payload)))])
    kind = classify_udp4500(payload).kind
    expected = {"keepalive": "analysed:natt-keepalive", "ike": "analysed:ike", "esp": "analysed:esp",
                "malformed": "malformed:truncated:udpencap"}[kind]
    assert fi.category == expected


def test_ah_then_esp_is_both():
    ah = struct.pack("!BBHII", 50, 4, 0, 0x100, 9) + bytes(12)
    (fi,) = run([eth(ip4(51, ah + ESP))])
    assert fi.protocols == ["ah", "esp"] and fi.ah_spi == [0x100] and fi.esp_spi == 0xC0FFEE01


def test_ipv6_extension_headers_and_ah():
    # hop-by-hop (8 bytes) -> destination options (8) -> AH (24) -> ESP
    hbh = bytes([60, 0]) + bytes(6)
    dst = bytes([51, 0]) + bytes(6)
    ah = struct.pack("!BBHII", 50, 4, 0, 0x200, 3) + bytes(12)
    payload = hbh + dst + ah + ESP
    ip6 = struct.pack("!IHBB", 6 << 28, len(payload), 0, 64) + A6 + B6 + payload
    (fi,) = run([eth(ip6, 0x86DD)])
    assert fi.protocols == ["ah", "esp"] and fi.ah_spi == [0x200] and fi.esp_seq == 5


def test_link_types():
    ipb = bytes(ip4(50, ESP))
    ip6 = struct.pack("!IHBB", 6 << 28, len(ESP), 50, 64) + A6 + B6 + ESP
    cases = [
        (0, struct.pack("<I", 2) + ipb),  # BSD loopback, host (little-endian) order, AF_INET
        (0, struct.pack("<I", 30) + ip6),  # AF_INET6 on Darwin
        (108, struct.pack("!I", 24) + ip6),  # OpenBSD DLT_LOOP, network order
        (101, ipb), (12, ipb), (14, ip6), (228, ipb), (229, ip6),
        (113, bytes(14) + b"\x08\x00" + ipb),  # Linux SLL: protocol at offset 14
        (276, b"\x86\xdd" + bytes(18) + ip6),  # Linux SLL2: protocol at offset 0
    ]
    for lt, frame in cases:
        (fi,) = run([frame], lt)
        assert fi.category == "analysed:esp", (lt, fi.category)


def test_skipped_and_malformed_reasons():
    arp = eth(b"\x00" * 28, 0x0806)
    (fi,) = run([arp])
    assert fi.category == "skipped:non-IP ethertype 0x0806 (ARP)"
    (fi,) = run([b"\x00" * 10])
    assert fi.category == "malformed:truncated:ethernet"
    (fi,) = run([eth(b"\x45\x00\x00")])
    assert fi.category == "malformed:truncated:ipv4"
    bad_ihl = bytearray(bytes(ip4(50, ESP)))
    bad_ihl[0] = 0x43  # IHL 3 words < 20 bytes
    (fi,) = run([eth(bytes(bad_ihl))])
    assert fi.category == "malformed:bad_length:ipv4"
    (fi,) = run([b"\x00" * 40], lt=147)
    assert fi.category == "skipped:unsupported link type 147"
    (fi,) = run([eth(ip4(50, ESP[:5]))])
    assert fi.category == "malformed:truncated:esp"


def test_ike_reassembled_from_ipv4_fragments():
    big = IKE_HDR[:24] + struct.pack("!I", 28 + 3000) + bytes([0, 0, 0x0B, 0xB8]) + bytes(2996)
    dgram = bytes(udp(500, 500, big))
    frags = []
    for off in range(0, len(dgram), 1480):
        chunk = dgram[off:off + 1480]
        more = off + 1480 < len(dgram)
        p = ip4(17, chunk, ident=77, frag=(0x2000 if more else 0) | (off // 8))
        frags.append(eth(p))
    res = run(frags[::-1])  # out of order: the first fragment arrives last
    assert [r.category for r in res] == ["analysed:ip-fragment"] * (len(frags) - 1) + ["analysed:ike"]
    assert res[-1].ike.ispi == "1122334455667788" and res[-1].ip_fragments == len(frags)


def test_esp_fragments_counted_on_the_sa():
    dgram = ESP + bytes(3000)
    frames = [eth(ip4(50, dgram[o:o + 1480], ident=9, frag=(0x2000 if o + 1480 < len(dgram) else 0) | (o // 8)))
              for o in range(0, len(dgram), 1480)]
    res = run(frames)
    assert res[-1].category == "analysed:esp" and res[-1].ip_fragments == 3
    assert res[0].category == "analysed:ip-fragment"


def test_ethernet_padding_is_ignored():
    short = eth(ip4(17, udp(4500, 4500, b"\xff")))
    (fi,) = run([short + bytes(20)])  # padded to the Ethernet minimum
    assert fi.category == "analysed:natt-keepalive"
