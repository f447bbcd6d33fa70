from ipsecpcap.dissectors.ah import parse_ah


def test_hmac_sha1_96():
    data = bytes.fromhex(
        "32"  # next header 50: ESP follows (AH+ESP)
        "04"  # payload length 4 -> (4 + 2) * 4 = 24 bytes of AH (RFC 4302 2.2)
        "0000"  # reserved
        "00000100"  # SPI 0x100
        "00000007"  # sequence 7
        "0102030405060708090a0b0c"  # 12-byte ICV (HMAC-SHA1-96)
        "deadbeef"  # what AH protects: here the start of the ESP header
    )
    ah = parse_ah(data)
    assert (ah.next_header, ah.payload_len, ah.header_len, ah.spi, ah.seq, ah.icv_len) == (50, 4, 24, 0x100, 7, 12)
    assert ah.icv == bytes.fromhex("0102030405060708090a0b0c")
    assert ah.anomalies == ()


def test_ipv6_zero_length_ah():
    # payload length 1 -> 12 bytes: no ICV at all (seen in zeek's ipv6_zero_len_ah.pcap)
    ah = parse_ah(bytes.fromhex("3b" "01" "0000" "00000001" "00000001"))
    assert (ah.header_len, ah.icv_len, ah.anomalies) == (12, 0, ())


def test_impossible_length():
    ah = parse_ah(bytes.fromhex("06" "00" "0000" "00000001" "00000001"))  # (0+2)*4 = 8 < 12
    assert [a.kind for a in ah.anomalies] == ["bad_length"]


def test_truncated_icv():
    ah = parse_ah(bytes.fromhex("06" "04" "0000" "00000001" "00000001" "0102"))  # 24 bytes announced, 14 present
    assert [a.kind for a in ah.anomalies] == ["truncated"]
    assert ah.icv == bytes.fromhex("0102")


def test_short_input():
    ah = parse_ah(b"\x06\x04")
    assert [a.kind for a in ah.anomalies] == ["truncated"]
