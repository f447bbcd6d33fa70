import pytest

from ipsecpcap.dissectors.natt import classify_udp4500


@pytest.mark.parametrize("payload, kind, offset", [
    (b"\xff", "keepalive", 0),  # RFC 3948 2.2: a single 0xFF octet
    (bytes(4) + bytes.fromhex("0011223344556677"), "ike", 4),  # 2.1: non-ESP marker, then the IKE header
    (bytes.fromhex("c0ffee01" "00000001" "aabb"), "esp", 0),  # 2.1: non-zero SPI, sequence
])
def test_kinds(payload, kind, offset):
    r = classify_udp4500(payload)
    assert (r.kind, r.offset) == (kind, offset)


def test_short_non_keepalive_is_malformed():
    r = classify_udp4500(b"\x01\x02\x03")
    assert r.kind == "malformed" and r.anomalies[0].kind == "truncated"
