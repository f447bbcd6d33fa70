from ipsecpcap.dissectors.esp import parse_esp


def test_header_fields():
    data = bytes.fromhex(
        "c0ffee01"  # SPI 0xc0ffee01 (RFC 4303 2.1)
        "0000002a"  # sequence number 42 (2.2)
        "00112233445566778899aabbccddeeff"  # 16 bytes of IV/ciphertext/ICV, opaque
    )
    esp = parse_esp(data)
    assert (esp.spi, esp.seq, esp.payload_len, esp.anomalies) == (0xC0FFEE01, 42, 16, ())


def test_truncated_header_is_an_anomaly_not_an_exception():
    esp = parse_esp(bytes.fromhex("c0ffee01" "0000"))  # SPI, then half a sequence number
    assert esp.spi == 0xC0FFEE01
    assert [a.kind for a in esp.anomalies] == ["truncated"]


def test_spi_zero_is_reserved():
    esp = parse_esp(bytes(8))
    assert [a.kind for a in esp.anomalies] == ["bad_header"]
